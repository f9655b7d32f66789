"""Concurrency limits as the database holds them: every worker reads a task's limit here at
each claim, so a limit a newly started worker writes holds for all the others at once. A
batch task has a row with no limit: the row records that its executions are claimed on
their own path, so that a start which changes that keys them anew."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class ConcurrencyLimit(models.Model):
    task_name = models.CharField(max_length=200, primary_key=True)
    concurrency = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many of its executions run at once (per key, with a key); "
        "null for a batch task, which has no limit.",
    )
    key = models.CharField(
        max_length=200,
        blank=True,
        db_default="",
        help_text="The payload field (a dotted path) whose value the limit counts per; "
        "empty for one limit across the task.",
    )
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ("task_name",)

    def __str__(self) -> str:
        if self.concurrency is None:
            return f"{self.task_name}: batched"
        per = f" per {self.key}" if self.key else ""
        return f"{self.task_name}: {self.concurrency}{per}"
