"""The schedules admin: every cron schedule, static and dynamic, with its expression in
words, its next and last tick, and pause, resume and run-now for those who may change
schedules. Schedules are made in code or by ``schedule()``, never edited here."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..exceptions import UnknownTask
from ..models import Schedule
from ..triggers import schedules
from ..triggers.cron import describe
from .base import ModelAdmin
from .display import plain_badge, short_json, when

CHANGE_PERMISSION = "django_conductor.change_schedule"


@admin.register(Schedule)
class ScheduleAdmin(ModelAdmin):
    list_display = (
        "name",
        "task_name",
        "expression_display",
        "timezone",
        "state",
        "next_run",
        "last_run",
        "kind",
    )
    list_filter = ("kind", "paused", "task_name")
    search_fields = ("name", "task_name")
    actions = ("pause_selected", "resume_selected", "run_now_selected")
    fields = (
        ("name", "task_name"),
        ("expression_display", "timezone"),
        ("state", "kind"),
        ("next_run", "last_run"),
        "payload_display",
        "executions",
    )
    readonly_fields = (
        "name",
        "task_name",
        "expression_display",
        "timezone",
        "state",
        "kind",
        "next_run",
        "last_run",
        "payload_display",
        "executions",
    )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # nothing to edit: the actions change schedules

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CHANGE_PERMISSION)

    @admin.display(description="schedule", ordering="expression")
    def expression_display(self, obj: Schedule) -> SafeString:
        return format_html("{} <code>{}</code>", describe(obj.expression), obj.expression)

    @admin.display(description="state", ordering="paused")
    def state(self, obj: Schedule) -> SafeString:
        return plain_badge("sleeping", "paused") if obj.paused else plain_badge("completed", "on")

    @admin.display(description="next run", ordering="next_run_at")
    def next_run(self, obj: Schedule) -> str:
        return when(obj.next_run_at)

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: Schedule) -> str:
        return when(obj.last_run_at)

    @admin.display(description="payload")
    def payload_display(self, obj: Schedule) -> str:
        return short_json(obj.payload, limit=400)

    @admin.display(description="executions")
    def executions(self, obj: Schedule) -> SafeString:
        query = urlencode({"task_name": obj.task_name, "event_name": obj.name})
        url = reverse("admin:django_conductor_execution_changelist") + "?" + query
        return format_html('<a href="{}">Its executions</a>', url)

    @admin.action(permissions=("operate",), description="Pause the selected schedules")
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedules.pause, "Paused", "already paused")

    @admin.action(permissions=("operate",), description="Resume the selected schedules")
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedules.resume, "Resumed", "not paused")

    @admin.action(permissions=("operate",), description="Run the selected schedules now")
    def run_now_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        self._each(request, queryset, schedules.run_now, "Started", "gone")

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Schedule], change: Any, done: str, no: str
    ) -> None:
        """Apply ``change`` to each schedule, log it on the schedule's History, and say how
        many it changed and which it left."""
        changed: list[Schedule] = []
        left: list[str] = []
        for row in queryset.order_by("id"):
            try:
                outcome = change(row.pk)
            except (UnknownTask, ValueError) as exc:
                self.message_user(request, f"{row.name}: {exc}", messages.ERROR)
                continue
            if outcome is None or outcome is False:
                left.append(row.name)
                continue
            changed.append(row)
            LogEntry.objects.log_actions(
                cast(int, request.user.pk), [row], CHANGE, change_message=f"{done} from the admin"
            )
        if changed:
            names = ", ".join(row.name for row in changed)
            self.message_user(request, f"{done}: {names}.", messages.SUCCESS)
        if left:
            self.message_user(request, f"Left as they were ({no}): {', '.join(left)}.")
