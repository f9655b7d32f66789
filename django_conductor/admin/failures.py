"""The failures admin: one row per attempt budget an execution used up, with its error and
traceback, and retry for those who may change executions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Execution, FailedExecution
from .base import ReadOnlyAdmin
from .changelist import RetriedFilter, TaskFilter, as_id
from .display import first_line, status_badge, when
from .operations import RETRY, can_change, retryable
from .views import execution_url


@admin.register(FailedExecution)
class FailedExecutionAdmin(ReadOnlyAdmin):
    list_display = (
        "failed",
        "execution_display",
        "task_name",
        "error_line",
        "attempts",
        "retried",
        "now_display",
    )
    list_display_links = ("failed",)
    list_filter = (TaskFilter, RetriedFilter, ("failed_at", admin.DateFieldListFilter))
    search_fields = ("=execution__id", "=task_name", "error")
    search_help_text = "An execution id, a task name, or words from the error."
    list_select_related = ("execution",)
    sortable_by = ("failed",)
    actions = ("retry_selected",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("execution_display", "now_display"),
                    ("task_name", "attempts"),
                    ("failed", "retried"),
                    "error_display",
                    "traceback_display",
                )
            },
        ),
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[FailedExecution], search_term: str
    ) -> tuple[QuerySet[FailedExecution], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        execution_id = as_id(term)
        matches = queryset.filter(task_name=term) | queryset.filter(error__icontains=term)
        if execution_id is not None:
            matches = matches | queryset.filter(execution_id=execution_id)
        return matches, False

    @admin.display(description="failed", ordering="failed_at")
    def failed(self, obj: FailedExecution) -> str:
        return when(obj.failed_at)

    @admin.display(description="retried")
    def retried(self, obj: FailedExecution) -> str:
        return when(obj.retried_at)

    @admin.display(description="execution")
    def execution_display(self, obj: FailedExecution) -> str:
        return format_html(
            '<a href="{}">#{}</a>', execution_url(obj.execution_id), obj.execution_id
        )

    @admin.display(description="status now")
    def now_display(self, obj: FailedExecution) -> SafeString:
        return status_badge(obj.execution)

    @admin.display(description="error")
    def error_line(self, obj: FailedExecution) -> str:
        return first_line(obj.error)

    @admin.display(description="error")
    def error_display(self, obj: FailedExecution) -> SafeString:
        return format_html('<pre class="cd-error-text">{}</pre>', obj.error)

    @admin.display(description="traceback")
    def traceback_display(self, obj: FailedExecution) -> SafeString | str:
        if not obj.traceback:
            return "—"
        return format_html('<pre class="cd-traceback">{}</pre>', obj.traceback)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: FailedExecution | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(
                can_operate=can_change(request),
                can_retry=retryable(obj.execution),
                retry_url=execution_url(obj.execution_id, "retry"),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(permissions=("operate",), description="Retry the selected executions")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[FailedExecution]) -> Any:
        failures = list(queryset.only("id", "execution_id"))
        ids = {failure.execution_id for failure in failures}
        executions = list(Execution.objects.filter(pk__in=ids).order_by("id"))
        return self.confirm_or_run(
            request, executions, selected=failures, operation=RETRY, action="retry_selected"
        )
