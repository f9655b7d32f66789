"""Workloads 1 (no-op throughput) and 3 (pickup latency) on Procrastinate, through its
documented API (``App``, ``@app.task``, ``batch_defer``/``defer``) and its worker command at
its defaults. Timings come from its ``procrastinate_events`` table (the database clock)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import common
import psycopg
from common import (
    drain_backlog,
    drained,
    latency_summary,
    main,
    pickups,
    spawn,
    stop,
)
from procrastinate_app import app, noop

WORKER = [sys.executable, "-m", "procrastinate", "--app=procrastinate_app.app", "worker"]


def sql(query: str, params: Any = None) -> list[tuple]:
    import os

    with psycopg.connect(os.environ["BENCH_PEER_CONNINFO"], autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def reset() -> None:
    sql(
        "TRUNCATE procrastinate_events, procrastinate_periodic_defers, procrastinate_jobs, "
        "procrastinate_workers RESTART IDENTITY CASCADE"
    )


def succeeded() -> int:
    return int(sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")[0][0])


#: The peer's names for a job done, waiting and running.
STATUSES = common.Statuses("succeeded", "todo", "doing")


def check_once(expected_done: int, total: int, interrupted: int = 0) -> None:
    twice = sql(
        "SELECT count(*) FROM (SELECT job_id FROM procrastinate_events WHERE type = 'started' "
        "GROUP BY job_id HAVING count(*) > 1) AS t"
    )[0][0]
    common.check_once(
        dict(sql("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1")),
        twice,
        STATUSES,
        expected_done,
        total,
        interrupted,
    )


def setup(args: argparse.Namespace) -> dict[str, Any]:
    with app.open():
        app.schema_manager.apply_schema()
    import procrastinate

    return {"version": procrastinate.__version__}


def noop_throughput(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    with app.open():
        for start in range(0, args.count, 5000):
            noop.batch_defer(*({"n": n} for n in range(start, min(args.count, start + 5000))))
    sql("ANALYZE procrastinate_jobs")
    options, suffix = [], ""
    if args.concurrency:
        options, suffix = ["--concurrency", str(args.concurrency)], f"-c{args.concurrency}"
    log = args.logs / f"peer-procrastinate-noop{suffix}.log"
    done, capped, wall = drain_backlog(
        [*WORKER, *options, "--one-shot"], log, succeeded, args.count, args.cap
    )
    interrupted = (args.concurrency or 1) if capped else 0
    check_once(done if capped else args.count, args.count, interrupted)
    (span,) = sql(
        "SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded') "
        "- min(at) FILTER (WHERE type = 'started'))::float FROM procrastinate_events"
    )[0]
    return drained(args.concurrency or 1, args.count, done, capped, span, wall)


def pickup(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    worker = spawn(WORKER, args.logs / "peer-procrastinate-pickup.log")
    try:
        with app.open():
            pickups(lambda n: noop.defer(n=n), succeeded, args.count, args.gap_ms, 120)
    finally:
        stop(worker)
    check_once(args.count + 1, args.count + 1)
    latencies = [
        row[0]
        for row in sql(
            "SELECT extract(epoch FROM s.at - d.at)::float * 1000 FROM procrastinate_events d "
            "JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started' "
            "WHERE d.type = 'deferred' AND d.job_id > 1"
        )
    ]
    return latency_summary(latencies, args.count, args.gap_ms)


if __name__ == "__main__":
    main({"setup": setup, "noop": noop_throughput, "pickup": pickup})
