"""A read-only inspector of executions; failed ones can be retried (change permission)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import ngettext

from .api import retry
from .models import Execution, FailedExecution, Step


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds or edits executions by hand; every field comes from ``_meta``."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields] + list(self.extra_readonly)

    extra_readonly: tuple[str, ...] = ()

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Viewing is enough to open the pages; actions check the change permission.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def pretty_json(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


class StepInline(admin.TabularInline):
    model = Step
    fk_name = "execution"
    fields = (
        "name",
        "kind",
        "result",
        "error",
        "attempt",
        "started_at",
        "finished_at",
        "wake_at",
        "child",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "task_name",
        "queue",
        "status",
        "attempts",
        "priority",
        "created_at",
        "run_at",
    )
    list_filter = ("status", "queue", "task_name")
    search_fields = ("=id", "task_name", "dedupe_key")
    list_select_related = ("parent",)
    show_full_result_count = False
    inlines = (StepInline,)
    extra_readonly = ("payload_pretty", "result_pretty")

    @admin.display(description="payload")
    def payload_pretty(self, obj: Execution) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="result")
    def result_pretty(self, obj: Execution) -> str:
        return pretty_json(obj.result)


@admin.register(FailedExecution)
class FailedExecutionAdmin(ReadOnlyAdmin):
    list_display = ("execution", "task_name", "error_line", "attempts", "failed_at", "retried_at")
    list_filter = ("task_name", ("retried_at", admin.EmptyFieldListFilter))
    search_fields = ("=execution__id", "task_name", "error")
    list_select_related = ("execution",)
    show_full_result_count = False
    actions = ("retry_executions",)
    extra_readonly = ("traceback_pre",)

    @admin.display(description="error")
    def error_line(self, obj: FailedExecution) -> str:
        first = obj.error.splitlines()[0] if obj.error else ""
        return first[:120]

    @admin.display(description="traceback")
    def traceback_pre(self, obj: FailedExecution) -> str:
        return format_html("<pre>{}</pre>", obj.traceback)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        opts = Execution._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(
        permissions=("retry",),
        description="Retry the selected executions (completed steps are kept)",
    )
    def retry_executions(self, request: HttpRequest, queryset: QuerySet[FailedExecution]) -> None:
        ids = set(queryset.values_list("execution_id", flat=True))
        retried = [execution_id for execution_id in sorted(ids) if retry(execution_id)]
        skipped = len(ids) - len(retried)
        if retried:
            self.message_user(
                request,
                ngettext(
                    "Retried %(count)d execution; its completed steps are kept.",
                    "Retried %(count)d executions; their completed steps are kept.",
                    len(retried),
                )
                % {"count": len(retried)},
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "Skipped %(count)d execution that is no longer failed.",
                    "Skipped %(count)d executions that are no longer failed.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )
