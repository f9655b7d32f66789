"""The columns and fields of the executions admin, each worked out from one execution:
apart from ``ExecutionAdmin`` so that its class says what the pages show and do."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Execution, WorkerHeartbeat
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
from .views import execution_url


class ExecutionFields:
    """For the executions' ModelAdmin: what ``list_display`` and ``fieldsets`` name."""

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
