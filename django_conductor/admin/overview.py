"""What the admin's overview page shows: counts by status, task and queue, the oldest ready
execution, the last hour's throughput and the workers, each from a statement bounded by an
index and a cap (``store.overview``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from ..conf import settings
from ..models import CLAIMABLE, FINISHED, Status, WorkerHeartbeat
from ..registry import registry
from ..store import overview as queries

#: Counts by status stop here; a bigger one is shown as the planner's estimate, or "100,000+".
STATUS_CAP = 100_000
#: Completed executions have no index of their own, so counting them reads the table: stop
#: sooner.
COMPLETED_CAP = 10_000
#: Rows read for the per-task table, in each of its three parts.
TASK_CAP = 100_000
#: Ready executions counted per queue, in all.
BACKLOG_CAP = 100_000
MINUTES = 60

STATUSES = [status.value for status in Status]
#: The per-task table's columns: what is not completed, then completions of the last hour.
TASK_COLUMNS = [s for s in STATUSES if s != Status.COMPLETED] + ["completed_last_hour"]


@dataclass(frozen=True)
class Count:
    value: int
    cap: int
    estimate: int | None = None

    @property
    def capped(self) -> bool:
        return self.value >= self.cap

    def __str__(self) -> str:
        if not self.capped:
            return f"{self.value:,}"
        if self.estimate is not None and self.estimate > self.cap:
            return f"≈ {self.estimate:,}"
        return f"{self.value:,}+"


@dataclass(frozen=True)
class Minute:
    ago: int
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.cancelled


@dataclass(frozen=True)
class Worker:
    heartbeat: WorkerHeartbeat
    running: int
    late: bool


@dataclass(frozen=True)
class OldestReady:
    id: int
    task_name: str
    queue: str
    ready_since: datetime

    @property
    def age(self) -> timedelta:
        return timezone.now() - self.ready_since


@dataclass
class Overview:
    by_status: dict[str, Count]
    by_task: dict[str, dict[str, int]]
    backlog: dict[str, Count]
    backlog_capped: bool
    oldest_ready: OldestReady | None
    minutes: list[Minute]
    workers: list[Worker] = field(default_factory=list)

    @property
    def finished_last_hour(self) -> int:
        return sum(minute.total for minute in self.minutes)

    @property
    def tasks_no_worker_has(self) -> list[str]:
        """Tasks with claimable executions that no live worker can run (a rolling deploy,
        or a worker started from other code): they wait, unclaimed, for one that can."""
        live = [worker for worker in self.workers if not worker.late]
        if not live:
            return []  # the page says already that no worker runs
        known = {name for worker in live for name in worker.heartbeat.tasks}
        claimable = [status.value for status in CLAIMABLE]
        return [
            task
            for task, counts in self.by_task.items()
            if task not in known and any(counts[status] for status in claimable)
        ]


def task_names() -> list[str]:
    """The tasks registered in code: reading distinct names from the table would scan it."""
    return sorted(task.name for task in registry)


def collect() -> Overview:
    """Six statements (seven when a count stops at its cap), each bounded by an index and a
    cap."""
    with connection.cursor() as cursor:
        by_status = _by_status(cursor)
        cells = {
            (c.task_name, c.column): c.executions
            for c in queries.by_task(cursor, TASK_CAP, MINUTES)
        }
        by_task = {
            task: {column: cells.get((task, column), 0) for column in TASK_COLUMNS}
            for task in sorted({task for task, _ in cells})
        }
        backlog = {
            b.queue: Count(b.ready, BACKLOG_CAP) for b in queries.backlog(cursor, BACKLOG_CAP)
        }
        row = queries.oldest_ready(cursor)
        oldest = OldestReady(*row) if row else None
        minutes = _minutes(queries.throughput(cursor, MINUTES))
        running = {r.worker_id: r.executions for r in queries.running_by_worker(cursor)}
    return Overview(
        by_status=by_status,
        by_task=by_task,
        backlog=backlog,
        backlog_capped=sum(c.value for c in backlog.values()) >= BACKLOG_CAP,
        oldest_ready=oldest,
        minutes=minutes,
        workers=_workers(running),
    )


def _by_status(cursor: Any) -> dict[str, Count]:
    caps = {
        status: COMPLETED_CAP if status == Status.COMPLETED else STATUS_CAP for status in STATUSES
    }
    found = queries.by_status(cursor, caps)
    estimates: dict[str, int] = {}
    if any(found[status] >= caps[status] for status in STATUSES):
        estimates = {e.status: e.rows for e in queries.estimates(cursor)}
    return {
        status: Count(found[status], caps[status], estimates.get(status)) for status in STATUSES
    }


def _minutes(finished: list[queries.Finished]) -> list[Minute]:
    by_minute: dict[int, dict[str, int]] = {ago: {} for ago in range(MINUTES)}
    for row in finished:
        if row.status in FINISHED:
            by_minute[max(0, row.minutes_ago)][row.status] = row.executions
    return [Minute(ago, **by_minute[ago]) for ago in range(MINUTES - 1, -1, -1)]


def _workers(running: dict[str | None, int]) -> list[Worker]:
    late_before = timezone.now() - timedelta(seconds=settings.HEARTBEAT_INTERVAL * 3)
    return [
        Worker(beat, running.get(beat.worker_id, 0), beat.last_seen_at < late_before)
        for beat in WorkerHeartbeat.objects.order_by("host", "pid")
    ]
