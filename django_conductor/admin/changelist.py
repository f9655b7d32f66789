"""Change lists that stay fast on millions of rows: no ``count(*)`` on any page load,
filters whose choices come from an index or from code, and a search that uses indexes."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from ..models import WorkerHeartbeat
from ..registry import registry
from .overview import task_names

#: The largest value PostgreSQL's bigint holds; bigger "ids" are not ids.
MAX_ID = 2**63 - 1


class UncountedChangeList(ChangeList):
    """Fetches one row more than a page instead of counting: the next-page link needs to know
    whether more rows follow, never how many. Selecting "all across pages" is not offered,
    so an action touches only the rows a person saw."""

    def get_results(self, request: HttpRequest) -> None:
        self.page_num = max(1, self.page_num)
        per_page = self.list_per_page
        offset = (self.page_num - 1) * per_page
        rows = list(self.queryset[offset : offset + per_page + 1])
        self.has_next = len(rows) > per_page
        self.result_list = rows[:per_page]
        self.result_count = len(self.result_list)
        self.full_result_count = None
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = False
        # The stock pagination tag would ask a paginator for page numbers; there is none.
        self.multi_page = False
        self.paginator = None
        self.first_row = offset + 1
        self.previous_url = (
            self.get_query_string({PAGE_VAR: self.page_num - 1}) if self.page_num > 1 else None
        )
        self.next_url = (
            self.get_query_string({PAGE_VAR: self.page_num + 1}) if self.has_next else None
        )


class UncountedListMixin:
    """For a ModelAdmin: the change list above, without facet counts."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions_selection_counter = True

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return UncountedChangeList


class TaskFilter(admin.SimpleListFilter):
    """The tasks registered in code; a task that no longer exists still works from the URL
    (``?task=old-name``). Distinct names from the table would cost a full scan."""

    title = "task"
    parameter_name = "task"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = task_names()
        if self.value() and self.value() not in names:
            names.append(str(self.value()))
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(task_name=self.value()) if self.value() else queryset


class QueueFilter(admin.SimpleListFilter):
    """Queues named in code (each task's queue) or served by a live worker; scanning the table
    for distinct queues would cost a full scan, and any queue works through ``?queue=``."""

    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        queues = {task.queue for task in registry}
        for served in WorkerHeartbeat.objects.values_list("queues", flat=True):
            queues.update(q for q in served or () if isinstance(q, str))
        if self.value():
            queues.add(str(self.value()))
        return [(queue, queue) for queue in sorted(queues)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(queue=self.value()) if self.value() else queryset


class ParentFilter(admin.SimpleListFilter):
    """The children of one execution (``?parent=42``), linked from its page; shown only
    while in use."""

    title = "parent"
    parameter_name = "parent"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = as_id(str(self.value() or ""))
        return [] if value is None else [(str(value), f"children of #{value}")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = as_id(str(self.value() or ""))
        return queryset if value is None else queryset.filter(parent_id=value)


class RetriedFilter(admin.SimpleListFilter):
    title = "retried"
    parameter_name = "retried"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Not retried yet"), ("yes", "Retried")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(retried_at__isnull=self.value() == "no")
        return queryset


def as_id(term: str) -> int | None:
    """``42`` and ``#42`` are ids; anything else is not."""
    digits = term.removeprefix("#")
    if digits.isdigit() and int(digits) <= MAX_ID:
        return int(digits)
    return None


def execution_search(term: str) -> Q:
    """An id, the start of a dedupe key, or a registered task's name: each one a query that
    an index answers (a task's executions are common enough for the newest-first scan)."""
    term = term.strip()
    query = Q(dedupe_key__startswith=term)
    execution_id = as_id(term)
    if execution_id is not None:
        query |= Q(id=execution_id)
    if term in registry:
        query |= Q(task_name=term)
    return query
