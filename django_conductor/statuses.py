"""An execution's statuses, and the groups the engine reads them in; a schedule's kinds.
Below everything that reads them, so that no module spells one out; ``models`` offers them
too."""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SLEEPING = "sleeping", "Sleeping"
    WAITING = "waiting", "Waiting on child"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


#: States a worker may claim once ``run_at`` has passed.
CLAIMABLE = (Status.PENDING, Status.SLEEPING, Status.WAITING)
#: States that can still change; a dedupe key is unique among them.
LIVE = (Status.PENDING, Status.RUNNING, Status.SLEEPING, Status.WAITING)
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


class ScheduleKind(models.TextChoices):
    STATIC = "static", "In code"
    DYNAMIC = "dynamic", "Made by schedule()"
