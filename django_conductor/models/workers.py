"""The workers that are running, as their heartbeats tell."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class WorkerHeartbeat(models.Model):
    """One row per live worker process, renewed by its heartbeat."""

    worker_id = models.CharField(max_length=200, primary_key=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True, help_text="Empty means every queue.")
    tasks = models.JSONField(default=list, blank=True, help_text="The tasks it can run.")
    concurrency = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ("worker_id",)

    def __str__(self) -> str:
        return self.worker_id
