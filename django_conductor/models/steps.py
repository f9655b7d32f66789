"""What an execution leaves on record: its steps, and the failure of one that exhausted its
attempts."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from ..retrying import retry_execution
from .executions import Execution


class StepKind(models.TextChoices):
    STEP = "step", "Step"
    SLEEP = "sleep", "Sleep"
    INVOKE = "invoke", "Child invoke"
    EVENT = "event", "Wait for an event"


class Step(models.Model):
    """A recorded unit of work inside an execution; replays return its stored result."""

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=StepKind.choices, db_default="step")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, db_default="")
    attempt = models.PositiveIntegerField(db_default=1)
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    wake_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="A sleep's wake time, or a child invoke's or an event wait's deadline.",
    )
    child = models.ForeignKey(
        Execution, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    awaited_event = models.CharField(  # noqa: DJ001
        max_length=200, null=True, blank=True, help_text="The event an event wait waits for."
    )
    event_match = models.JSONField(
        null=True, blank=True, help_text="Top-level payload values the awaited event must have."
    )

    class Meta:
        ordering = ("execution", "id")
        constraints = [
            models.UniqueConstraint("execution", "name", name="conductor_step_name_unique"),
        ]
        indexes = [
            # emit() finds the waits for its event that are still open.
            models.Index(
                fields=["awaited_event"],
                name="conductor_open_event_waits",
                condition=Q(kind="event", finished_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of #{self.execution_id}"


class FailedExecutionQuerySet(models.QuerySet["FailedExecution"]):
    def unretried(self) -> FailedExecutionQuerySet:
        return self.filter(retried_at__isnull=True)


class FailedExecution(models.Model):
    """The record of an execution that exhausted its attempts; kept after a retry."""

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="failures")
    task_name = models.CharField(max_length=200)
    error = models.TextField()
    traceback = models.TextField(blank=True, db_default="")
    attempts = models.PositiveIntegerField()
    failed_at = models.DateTimeField(db_default=Now())
    retried_at = models.DateTimeField(null=True, blank=True)

    objects = FailedExecutionQuerySet.as_manager()

    class Meta:
        ordering = ("-failed_at", "-id")
        indexes = [models.Index(fields=["-failed_at"], name="conductor_failed_at")]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.execution_id} failed"

    def retry(self) -> bool:
        """Put the execution back to pending with a fresh attempt budget, keeping its steps."""
        return retry_execution(self.execution_id)
