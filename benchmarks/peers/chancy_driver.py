"""Workloads 1 (no-op throughput) and 3 (pickup latency) on Chancy, through its documented API
(``Chancy``, ``@job``, ``Queue``, ``sync_declare``, ``sync_push_many``/``sync_push``) and its
``chancy worker start`` command, on the ``default`` queue at Chancy's defaults (a process pool
as large as the machine has CPUs; polling every 5 seconds, woken by NOTIFY when jobs are
pushed). Times come from its jobs table: ``created_at`` and ``started_at`` are the database's
``now()`` when a job is pushed and claimed; ``completed_at`` is the worker's own clock, on the
same machine, when the job's process hands back its result."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import common
import psycopg
from chancy import Queue
from chancy_app import app, noop
from common import (
    drain_backlog,
    drained,
    latency_summary,
    main,
    pickups,
    spawn,
    stop,
)

WORKER = [str(Path(sys.executable).with_name("chancy")), "--app=chancy_app.app", "worker", "start"]
JOBS = f"{app.prefix}jobs"


def sql(query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(os.environ["BENCH_PEER_CONNINFO"], autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def reset(concurrency: int | None = None) -> None:
    """No jobs, and the queue as Chancy's worker declares it by default; or, at another
    ``concurrency``, also polling again as soon as a job finishes (``eager_polling``), since a
    backlog otherwise waits out the polling interval for every batch it claims."""
    sql(f"TRUNCATE {JOBS}")
    queue = Queue("default", concurrency=concurrency, eager_polling=concurrency is not None)
    with app:
        app.sync_declare(queue, upsert=True)


def succeeded() -> int:
    return int(sql(f"SELECT count(*) FROM {JOBS} WHERE state = 'succeeded'")[0][0])


#: The peer's names for a job done, waiting and running.
STATUSES = common.Statuses("succeeded", "pending", "running")


def check_once(expected_done: int, total: int, interrupted: int = 0) -> None:
    common.check_once(
        dict(sql(f"SELECT state, count(*) FROM {JOBS} GROUP BY 1")),
        sql(f"SELECT count(*) FROM {JOBS} WHERE attempts > 1")[0][0],
        STATUSES,
        expected_done,
        total,
        interrupted,
    )


def setup(args: argparse.Namespace) -> dict[str, Any]:
    async def migrate() -> None:
        async with app:
            await app.migrate()

    asyncio.run(migrate())
    return {"version": version("chancy")}


def noop_throughput(args: argparse.Namespace) -> dict[str, Any]:
    reset(args.concurrency)
    with app:
        for _ in app.sync_push_many([noop.job.with_kwargs(n=n) for n in range(args.count)]):
            pass
    sql(f"ANALYZE {JOBS}")
    suffix = f"-c{args.concurrency}" if args.concurrency else ""
    log = args.logs / f"peer-chancy-noop{suffix}.log"
    done, capped, wall = drain_backlog(WORKER, log, succeeded, args.count, args.cap)
    concurrency = args.concurrency or getattr(os, "process_cpu_count", os.cpu_count)() or 1
    check_once(done if capped else args.count, args.count, concurrency if capped else 0)
    (span,) = sql(
        f"SELECT extract(epoch FROM max(completed_at) - min(started_at))::float FROM {JOBS} "
        "WHERE state = 'succeeded'"
    )[0]
    result = drained(concurrency, args.count, done, capped, span, wall)
    return {**result, "settings": "eager polling"} if args.concurrency else result


def pickup(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    worker = spawn(WORKER, args.logs / "peer-chancy-pickup.log")
    try:
        with app:
            warm = pickups(
                lambda n: app.sync_push(noop.job.with_kwargs(n=n)),
                succeeded,
                args.count,
                args.gap_ms,
                120,
            )
    finally:
        stop(worker)
    check_once(args.count + 1, args.count + 1)
    latencies = [
        row[0]
        for row in sql(
            f"SELECT extract(epoch FROM started_at - created_at)::float * 1000 FROM {JOBS} "
            "WHERE id <> %s",
            [warm.identifier],
        )
    ]
    return latency_summary(latencies, args.count, args.gap_ms)


if __name__ == "__main__":
    main({"setup": setup, "noop": noop_throughput, "pickup": pickup})
