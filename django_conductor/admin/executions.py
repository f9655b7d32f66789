"""The executions admin: every execution, read-only, with its steps' timeline and children,
and retry, cancel and run-now for those who may change executions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from ..models import Execution
from . import timeline
from .base import ReadOnlyAdmin
from .changelist import (
    ParentFilter,
    QueueFilter,
    TaskFilter,
    execution_search,
)
from .execution_fields import ExecutionFields
from .operations import CANCEL, RETRY, RUN_NOW, can_change, cancellable, retryable, runnable_now
from .views import ExecutionViews

#: Children listed on an execution's page; the rest are one click away in the list.
CHILD_LIMIT = 50
#: The event name of a plain ``invoke``, which says nothing on an execution's page.
INVOKE_EVENT = "conductor.invoke"


def without(fieldsets: Any, hidden: set[str]) -> list[Any]:
    """``fieldsets`` with the ``hidden`` fields left out, rows of fields included."""
    result = []
    for name, options in fieldsets:
        fields = []
        for field in options["fields"]:
            if isinstance(field, tuple):
                row = tuple(f for f in field if f not in hidden)
                if row:
                    fields.append(row)
            elif field not in hidden:
                fields.append(field)
        result.append((name, {**options, "fields": fields}))
    return result


@admin.register(Execution)
class ExecutionAdmin(ExecutionFields, ExecutionViews, ReadOnlyAdmin):
    list_display = (
        "id",
        "task_name",
        "queue",
        "status_column",
        "attempts_column",
        "priority",
        "created",
        "run_at_display",
        "duration",
        "parent_display",
    )
    list_display_links = ("id",)
    list_filter = (
        "status",
        TaskFilter,
        QueueFilter,
        ("created_at", admin.DateFieldListFilter),
        ParentFilter,
    )
    # The search box searches these through indexes only; see get_search_results.
    search_fields = ("=id", "=task_name", "dedupe_key")
    search_help_text = "An id (42 or #42), a task name, or the start of a dedupe key."
    # Rows show parent_id only, so no relation is joined or fetched per row.
    list_select_related = False
    sortable_by = ("id",)
    actions = ("retry_selected", "cancel_selected", "run_now_selected")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("status_display", "attempts_display"),
                    ("task_name", "queue", "priority"),
                    ("event_name", "dedupe_key"),
                    "superseded_display",
                    ("parent_display", "parent_step"),
                    "error_display",
                )
            },
        ),
        (
            "Times",
            {
                "fields": (
                    ("created", "run_at_display"),
                    ("started", "finished"),
                    ("duration", "claims", "cancel_requested"),
                )
            },
        ),
        ("Worker", {"fields": (("lease_owner", "lease_display"), "worker_display")}),
        ("Payload and result", {"fields": ("payload_display", "result_display")}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Execution | None = None) -> Any:
        """Leave out what says nothing here: a plain invoke's event, superseded when not."""
        hidden = set()
        if obj is None or obj.event_name == INVOKE_EVENT:
            hidden.add("event_name")
        if obj is None or not obj.superseded:
            hidden.add("superseded_display")
        return without(self.fieldsets, hidden)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Execution], search_term: str
    ) -> tuple[QuerySet[Execution], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(execution_search(search_term)), False

    # -- the page of one execution -----------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Execution | None = None,
    ) -> HttpResponse:
        if obj is not None:
            children = list(obj.children.order_by("id")[: CHILD_LIMIT + 1])
            context.update(
                timeline=timeline.for_execution(obj),
                children=children[:CHILD_LIMIT],
                more_children=len(children) > CHILD_LIMIT,
                children_url=reverse("admin:django_conductor_execution_changelist")
                + f"?parent={obj.pk}",
                failures=list(obj.failures.order_by("-failed_at", "-id")[:5]),
                can_operate=can_change(request),
                can_retry=retryable(obj),
                can_cancel=cancellable(obj),
                can_run_now=runnable_now(obj),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- operations --------------------------------------------------------------------

    @admin.action(permissions=("operate",), description="Retry the selected executions")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> Any:
        executions = list(queryset)
        return self.confirm_or_run(
            request, executions, selected=executions, operation=RETRY, action="retry_selected"
        )

    @admin.action(permissions=("operate",), description="Cancel the selected executions")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> Any:
        executions = list(queryset)
        return self.confirm_or_run(
            request, executions, selected=executions, operation=CANCEL, action="cancel_selected"
        )

    @admin.action(
        permissions=("operate",),
        description="Retry now: run the selected pending executions without waiting",
    )
    def run_now_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        RUN_NOW.apply(self, request, queryset.values_list("id", flat=True))
