"""The executions admin: every execution, read-only, with its steps' timeline and children,
and retry, cancel and run-now for those who may change executions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Execution, WorkerHeartbeat
from . import timeline
from .base import ReadOnlyAdmin
from .changelist import (
    ParentFilter,
    QueueFilter,
    TaskFilter,
    execution_search,
)
from .display import (
    attempts_used,
    error_block,
    execution_duration,
    humanize_duration,
    plain_badge,
    pretty_json,
    status_badge,
    status_note,
    when,
)
from .operations import CANCEL, RETRY, RUN_NOW, can_change, cancellable, retryable, runnable_now
from .views import ExecutionViews, execution_url

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
class ExecutionAdmin(ExecutionViews, ReadOnlyAdmin):
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

    # -- columns and fields ------------------------------------------------------------

    @admin.display(description="status")
    def status_column(self, obj: Execution) -> SafeString:
        return status_badge(obj)

    @admin.display(description="status")
    def status_display(self, obj: Execution) -> SafeString:
        note = status_note(obj)
        return format_html("{} {}", status_badge(obj), note) if note else status_badge(obj)

    @admin.display(description="attempts")
    def attempts_column(self, obj: Execution) -> SafeString:
        return format_html(
            '<span title="{}">{}/{}</span>', attempts_used(obj), obj.attempts, obj.max_attempts
        )

    @admin.display(description="attempts")
    def attempts_display(self, obj: Execution) -> str:
        return attempts_used(obj)

    @admin.display(description="superseded")
    def superseded_display(self, obj: Execution) -> str:
        newer = (
            Execution.objects.filter(
                task_name=obj.task_name, queue=obj.queue, dedupe_key=obj.dedupe_key, pk__gt=obj.pk
            )
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        by = format_html(' (<a href="{}">#{}</a>)', execution_url(newer), newer) if newer else ""
        return format_html(
            "Yes: a later invoke with the same dedupe key started a new execution{} while "
            "this one was live. This one still runs to its end, but the key is no longer its.",
            by,
        )

    @admin.display(description="created")
    def created(self, obj: Execution) -> str:
        return when(obj.created_at)

    @admin.display(description="run at")
    def run_at_display(self, obj: Execution) -> str:
        return when(obj.run_at)

    @admin.display(description="started")
    def started(self, obj: Execution) -> str:
        return when(obj.started_at)

    @admin.display(description="finished")
    def finished(self, obj: Execution) -> str:
        return when(obj.finished_at)

    @admin.display(description="cancel requested")
    def cancel_requested(self, obj: Execution) -> str:
        return when(obj.cancel_requested_at)

    @admin.display(description="duration")
    def duration(self, obj: Execution) -> str:
        return execution_duration(obj)

    @admin.display(description="parent")
    def parent_display(self, obj: Execution) -> str:
        if obj.parent_id is None:
            return "—"
        return format_html('<a href="{}">#{}</a>', execution_url(obj.parent_id), obj.parent_id)

    @admin.display(description="lease expires")
    def lease_display(self, obj: Execution) -> str:
        if obj.lease_expires_at is None:
            return "—"
        if obj.lease_expires_at < timezone.now():
            return format_html(
                "{} {}", when(obj.lease_expires_at), plain_badge("failed", "expired")
            )
        return when(obj.lease_expires_at)

    @admin.display(description="worker")
    def worker_display(self, obj: Execution) -> str:
        if not obj.lease_owner:
            return "No worker holds it."
        beat = WorkerHeartbeat.objects.filter(worker_id=obj.lease_owner).first()
        if beat is None:
            return "No heartbeat from this worker: it has stopped or died."
        seen = humanize_duration(timezone.now() - beat.last_seen_at)
        return f"host {beat.host}, pid {beat.pid}, last seen {seen} ago"

    @admin.display(description="payload")
    def payload_display(self, obj: Execution) -> SafeString:
        return pretty_json(obj.payload)

    @admin.display(description="result")
    def result_display(self, obj: Execution) -> SafeString:
        return pretty_json(obj.result)

    @admin.display(description="error")
    def error_display(self, obj: Execution) -> SafeString | str:
        return error_block(obj)

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
