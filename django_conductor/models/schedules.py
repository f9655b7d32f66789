"""Cron schedules: the static ones a task's ``cron(...)`` triggers define in code, and the
dynamic ones ``schedule()`` makes. Each keeps its next tick as a pending execution."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from ..statuses import ScheduleKind


class Schedule(models.Model):
    id = models.BigAutoField(primary_key=True)
    task_name = models.CharField(max_length=200)
    #: The event name its executions get.
    name = models.CharField(max_length=200)
    expression = models.CharField(max_length=200, help_text="5 fields, or 6 with seconds first.")
    timezone = models.CharField(max_length=100, help_text="Its ticks are computed in this zone.")
    payload = models.JSONField(null=True, blank=True, help_text="Every tick's payload.")
    kind = models.CharField(max_length=8, choices=ScheduleKind.choices)
    paused = models.BooleanField(db_default=False)
    next_run_at = models.DateTimeField(
        null=True, blank=True, help_text="The next tick, whose execution waits for it."
    )
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="The last tick passed.")
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ("task_name", "name")
        constraints = [
            models.UniqueConstraint("task_name", "name", name="conductor_schedule_name_unique"),
        ]
        indexes = [
            # The worker's duty looks for schedules whose next tick has passed.
            models.Index(
                fields=["next_run_at"], name="conductor_schedule_due", condition=Q(paused=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} of {self.task_name}"
