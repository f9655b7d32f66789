"""Executions: one run of a task, from invoke to its final status, and the querysets that
name its states."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from ..statuses import CLAIMABLE, FINISHED, LIVE, Status


class ExecutionQuerySet(models.QuerySet["Execution"]):
    def ready(self) -> ExecutionQuerySet:
        """Claimable right now."""
        return self.filter(status__in=CLAIMABLE, run_at__lte=Now())

    def pending(self) -> ExecutionQuerySet:
        return self.filter(status=Status.PENDING)

    def running(self) -> ExecutionQuerySet:
        return self.filter(status=Status.RUNNING)

    def sleeping(self) -> ExecutionQuerySet:
        return self.filter(status=Status.SLEEPING)

    def waiting(self) -> ExecutionQuerySet:
        return self.filter(status=Status.WAITING)

    def completed(self) -> ExecutionQuerySet:
        return self.filter(status=Status.COMPLETED)

    def failed(self) -> ExecutionQuerySet:
        return self.filter(status=Status.FAILED)

    def cancelled(self) -> ExecutionQuerySet:
        return self.filter(status=Status.CANCELLED)

    def live(self) -> ExecutionQuerySet:
        return self.filter(status__in=LIVE)

    def finished(self) -> ExecutionQuerySet:
        return self.filter(status__in=FINISHED)

    def lease_expired(self) -> ExecutionQuerySet:
        """Running, but their worker stopped renewing the lease."""
        return self.filter(status=Status.RUNNING, lease_expires_at__lt=Now())


ExecutionManager = models.Manager.from_queryset(ExecutionQuerySet)


class Execution(models.Model):
    """One run of a task, from invoke to its final status, across attempts and replays."""

    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100, db_default="default")
    event_name = models.CharField(max_length=200, db_default="conductor.invoke")
    payload = models.JSONField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, db_default=Status.PENDING.value
    )
    priority = models.IntegerField(db_default=0)
    run_at = models.DateTimeField(
        null=True,
        blank=True,
        db_default=Now(),
        help_text="Earliest time it may run next; empty while it waits on a child with no timeout.",
    )
    attempts = models.PositiveIntegerField(db_default=0, help_text="Attempts used so far.")
    max_attempts = models.PositiveIntegerField(db_default=3)
    claims = models.PositiveIntegerField(db_default=0, help_text="Times a worker claimed it.")
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    superseded = models.BooleanField(db_default=False)
    # No index of its own: conductor_one_child_per_step (parent, parent_step) serves lookups.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        db_index=False,
    )
    parent_step = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    scheduled_at = models.DateTimeField(
        null=True, blank=True, help_text="The cron tick this execution runs for."
    )
    slot = models.CharField(  # noqa: DJ001
        max_length=250,
        null=True,
        blank=True,
        help_text="The throttle or debounce slot it holds: kind, key and slot number.",
    )
    concurrency_key = models.CharField(  # noqa: DJ001
        max_length=200,
        null=True,
        blank=True,
        help_text="Null when it is claimed with the rest; else it is claimed on its task's "
        "own path (a concurrency limit, or a batch) and a limit counts it under this key, "
        "empty when task-wide.",
    )
    wake_pending = models.BooleanField(
        db_default=False, help_text="A child finished while this execution was running."
    )
    prefetched = models.BooleanField(
        db_default=False,
        help_text="Claimed ahead of a free thread: its attempt is counted when it ends, and a "
        "worker that dies first uses none of its attempts.",
    )
    count_at_claim = models.BooleanField(
        db_default=False,
        help_text="A claim of it was lost with its worker before the attempt was counted: "
        "each claim counts one at once until an attempt ends.",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    trace_context = models.JSONField(
        null=True,
        blank=True,
        help_text="The W3C trace context of the invoke that created it, when OpenTelemetry "
        "traced that invoke: each attempt's span links to it.",
    )
    lease_owner = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, db_default="")
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExecutionManager()

    class Meta:
        ordering = ("-id",)
        indexes = [
            # Claims and the idle worker's "when is the next one due?" read it one priority
            # level at a time (store.claims._LEVELS); a second index on run_at alone would tempt the
            # planner into sorting every ready row of a level.
            models.Index(
                models.F("priority").desc(),
                "run_at",
                "id",
                name="conductor_claimable",
                condition=Q(status__in=CLAIMABLE, concurrency_key__isnull=True),
            ),
            # The same for the executions of tasks with a concurrency limit, which only the
            # limited claim reads (store.limits): each ready row is in one of the two, so a
            # limited task's backlog is never read through by the claims of the others.
            models.Index(
                "task_name",
                models.F("priority").desc(),
                "run_at",
                "id",
                name="conductor_claimable_limited",
                include=["concurrency_key"],
                condition=Q(status__in=CLAIMABLE, concurrency_key__isnull=False),
            ),
            models.Index(
                "lease_expires_at", name="conductor_running", condition=Q(status=Status.RUNNING)
            ),
            # The admin's throughput chart and per-task completions of the last hour. Partial
            # indexes like these three get an entry only from the updates that end an
            # execution, not from every status change on the hot path.
            models.Index(
                fields=["finished_at"],
                include=["status", "task_name"],
                name="conductor_finished_at",
                condition=Q(finished_at__isnull=False),
            ),
            # Pruning reads the finished roots of one task and status, oldest first, down to
            # its retention's cut-off, and finds which tasks have any by skipping along it.
            models.Index(
                fields=["task_name", "status", "finished_at"],
                name="conductor_prunable",
                condition=Q(parent__isnull=True, finished_at__isnull=False),
            ),
            # The admin's status filter and counts (per task, too) for the unhappy ends.
            models.Index(
                fields=["status", "-id"],
                include=["task_name"],
                name="conductor_failed_cancelled",
                condition=Q(status__in=(Status.FAILED, Status.CANCELLED)),
            ),
            # The admin's search by dedupe key, exact or by its start (LIKE 'key%').
            models.Index(
                fields=["dedupe_key"],
                opclasses=["varchar_pattern_ops"],
                name="conductor_dedupe_key",
                condition=Q(dedupe_key__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                "task_name",
                "queue",
                "dedupe_key",
                name="conductor_live_dedupe_key",
                condition=Q(dedupe_key__isnull=False, superseded=False, status__in=LIVE),
            ),
            models.UniqueConstraint(
                "parent",
                "parent_step",
                name="conductor_one_child_per_step",
                condition=Q(parent__isnull=False),
            ),
            # One execution per throttle or debounce slot (and key), however many invoke.
            models.UniqueConstraint(
                "task_name",
                "slot",
                name="conductor_one_execution_per_slot",
                condition=Q(slot__isnull=False),
            ),
            # Exactly one execution per schedule tick, however many workers create it.
            models.UniqueConstraint(
                "task_name",
                "event_name",
                "scheduled_at",
                name="conductor_one_execution_per_tick",
                condition=Q(scheduled_at__isnull=False),
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="conductor_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk} ({self.status})"

    @property
    def duration(self):  # type: ignore[no-untyped-def]
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None
