"""What the admin's overview page counts, in statements whose cost does not grow with the
table: every one walks a partial index (the backlog, running, failed and cancelled ones, what
finished in the last hour) or stops at a cap.

Time is ``statement_timestamp()``, as in the columns' defaults, so that what was written
earlier in the same transaction is seen as already due."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from ..conf import settings
from ..models import CLAIMABLE, Status, WorkerHeartbeat
from ..registry import registry
from ..sql import EXECUTION

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
_CLAIMABLE = ", ".join(f"'{status.value}'" for status in CLAIMABLE)

#: One capped count per status, each with the status as a literal so that the planner can
#: pick the partial index that holds it (claimable, running, failed or cancelled).
_BY_STATUS = "SELECT " + ", ".join(
    f"(SELECT count(*) FROM (SELECT 1 FROM {EXECUTION} WHERE status = '{status}' "
    f"LIMIT %({status})s) capped)"
    for status in STATUSES
)

#: Rows per status as the planner estimates them from the last ANALYZE: the table's row
#: estimate times each status's share among its most common values.
_ESTIMATES = f"""
SELECT v.status, (c.reltuples * v.share)::bigint
FROM pg_class c
JOIN pg_stats s ON s.schemaname = current_schema() AND s.tablename = c.relname
    AND s.attname = 'status'
CROSS JOIN LATERAL unnest(s.most_common_vals::text::text[], s.most_common_freqs)
    AS v(status, share)
WHERE c.oid = '{EXECUTION}'::regclass AND c.reltuples > 0
"""

#: Three parts, one per partial index: claimable, running, failed or cancelled.
_BY_TASK = f"""
SELECT task_name, status, count(*) FROM (
    (SELECT task_name, status FROM {EXECUTION} WHERE status IN ({_CLAIMABLE}) LIMIT %(cap)s)
    UNION ALL
    (SELECT task_name, status FROM {EXECUTION} WHERE status = 'running' LIMIT %(cap)s)
    UNION ALL
    (SELECT task_name, status FROM {EXECUTION} WHERE status IN ('failed', 'cancelled')
     LIMIT %(cap)s)
) unfinished GROUP BY task_name, status
UNION ALL
SELECT task_name, 'completed_last_hour', count(*) FROM {EXECUTION}
WHERE finished_at > statement_timestamp() - make_interval(mins => %(minutes)s)
    AND status = 'completed'
GROUP BY task_name
"""

_BACKLOG = f"""
SELECT queue, count(*) FROM (
    SELECT queue FROM {EXECUTION}
    WHERE status IN ({_CLAIMABLE}) AND run_at <= statement_timestamp() LIMIT %(cap)s
) ready GROUP BY queue ORDER BY queue
"""

_OLDEST_READY = f"""
SELECT id, task_name, queue, run_at FROM {EXECUTION}
WHERE status IN ({_CLAIMABLE}) AND run_at <= statement_timestamp() ORDER BY run_at LIMIT 1
"""

_THROUGHPUT = f"""
SELECT least(floor(extract(epoch FROM statement_timestamp() - finished_at) / 60)::int,
             %(minutes)s - 1),
       status, count(*)
FROM {EXECUTION}
WHERE finished_at > statement_timestamp() - make_interval(mins => %(minutes)s)
GROUP BY 1, 2
"""

_RUNNING_BY_WORKER = f"""
SELECT lease_owner, count(*) FROM {EXECUTION} WHERE status = 'running' GROUP BY lease_owner
"""


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
        cursor.execute(_BY_TASK, {"cap": TASK_CAP, "minutes": MINUTES})
        cells = {(task, column): n for task, column, n in cursor.fetchall()}
        by_task = {
            task: {column: cells.get((task, column), 0) for column in TASK_COLUMNS}
            for task in sorted({task for task, _ in cells})
        }
        cursor.execute(_BACKLOG, {"cap": BACKLOG_CAP})
        backlog = {queue: Count(n, BACKLOG_CAP) for queue, n in cursor.fetchall()}
        cursor.execute(_OLDEST_READY)
        row = cursor.fetchone()
        oldest = OldestReady(*row) if row else None
        cursor.execute(_THROUGHPUT, {"minutes": MINUTES})
        minutes = _minutes(cursor.fetchall())
        cursor.execute(_RUNNING_BY_WORKER)
        running = dict(cursor.fetchall())
    return Overview(
        by_status=by_status,
        by_task=by_task,
        backlog=backlog,
        backlog_capped=sum(c.value for c in backlog.values()) >= BACKLOG_CAP,
        oldest_ready=oldest,
        minutes=minutes,
        workers=_workers(running),
    )


def _by_status(cursor) -> dict[str, Count]:  # type: ignore[no-untyped-def]
    caps = {
        status: COMPLETED_CAP if status == Status.COMPLETED else STATUS_CAP for status in STATUSES
    }
    cursor.execute(_BY_STATUS, caps)
    counts = dict(zip(STATUSES, cursor.fetchone(), strict=True))
    estimates: dict[str, int] = {}
    if any(counts[status] >= caps[status] for status in STATUSES):
        cursor.execute(_ESTIMATES)
        estimates = dict(cursor.fetchall())
    return {
        status: Count(counts[status], caps[status], estimates.get(status)) for status in STATUSES
    }


def _minutes(rows: list[tuple[int, str, int]]) -> list[Minute]:
    counts: dict[int, dict[str, int]] = {ago: {} for ago in range(MINUTES)}
    for ago, status, n in rows:
        if status in ("completed", "failed", "cancelled"):
            counts[max(0, ago)][status] = n
    return [Minute(ago, **counts[ago]) for ago in range(MINUTES - 1, -1, -1)]


def _workers(running: dict[str | None, int]) -> list[Worker]:
    late_before = timezone.now() - timedelta(seconds=settings.HEARTBEAT_INTERVAL * 3)
    return [
        Worker(beat, running.get(beat.worker_id, 0), beat.last_seen_at < late_before)
        for beat in WorkerHeartbeat.objects.order_by("host", "pid")
    ]
