"""Workloads 1 (no-op throughput) and 3 (pickup latency) on DBOS, through its documented API: a
no-op ``@DBOS.workflow()``, run by a launched DBOS process of its own (``dbos_app.py``) from a
queue the driver registers and fills with ``DBOSClient`` (``register_queue``,
``enqueue_in_transaction``, ``enqueue``), at DBOS's queue defaults: no concurrency limit, and
polling every second. Times come from the workflows' rows in ``dbos.workflow_status``:
``created_at``, ``started_at_epoch_ms`` and ``completed_at``, which DBOS sets from the
database's ``now()``, in whole milliseconds."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from typing import Any

import common
import psycopg
import sqlalchemy as sa
from common import (
    HERE,
    drain_backlog,
    drained,
    latency_summary,
    main,
    pickups,
    spawn,
    stop,
)
from dbos import DBOS, DBOSClient, EnqueueOptions
from dbos_app import QUEUE, system_database_url

WORKER = [sys.executable, str(HERE / "dbos_app.py")]
OPTIONS: EnqueueOptions = {"workflow_name": "noop", "queue_name": QUEUE}
STATUS = "dbos.workflow_status"


def sql(query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(os.environ["BENCH_PEER_CONNINFO"], autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def client() -> DBOSClient:
    return DBOSClient(system_database_url=system_database_url())


def reset(concurrency: int | None = None) -> None:
    """No workflows, and the queue at DBOS's defaults, or at ``concurrency`` a worker."""
    sql(f"TRUNCATE {STATUS} CASCADE")
    dbos = client()
    try:
        dbos.register_queue(QUEUE, worker_concurrency=concurrency)
    finally:
        dbos.destroy()


def succeeded() -> int:
    return int(
        sql(f"SELECT count(*) FROM {STATUS} WHERE name = 'noop' AND status = 'SUCCESS'")[0][0]
    )


#: The peer's names for a job done, waiting and running.
STATUSES = common.Statuses("SUCCESS", "ENQUEUED", "PENDING", "workflows")


def check_once(expected_done: int, total: int, interrupted: int | None = 0) -> None:
    common.check_once(
        dict(sql(f"SELECT status, count(*) FROM {STATUS} WHERE name = 'noop' GROUP BY 1")),
        sql(f"SELECT count(*) FROM {STATUS} WHERE recovery_attempts > 1")[0][0],
        STATUSES,
        expected_done,
        total,
        interrupted,
    )


def setup(args: argparse.Namespace) -> dict[str, Any]:
    DBOS.migrate(system_database_url())
    return {"version": version("dbos")}


def noop_throughput(args: argparse.Namespace) -> dict[str, Any]:
    reset(args.concurrency)
    dbos = client()
    engine = sa.create_engine(system_database_url("postgresql+psycopg"))
    try:
        for start in range(0, args.count, 1000):
            with engine.begin() as conn:
                for n in range(start, min(args.count, start + 1000)):
                    dbos.enqueue_in_transaction(conn, OPTIONS, n)
    finally:
        engine.dispose()
        dbos.destroy()
    sql(f"ANALYZE {STATUS}")
    suffix = f"-c{args.concurrency}" if args.concurrency else ""
    log = args.logs / f"peer-dbos-noop{suffix}.log"
    done, capped, wall = drain_backlog(WORKER, log, succeeded, args.count, args.cap)
    check_once(done if capped else args.count, args.count, args.concurrency if capped else 0)
    (span,) = sql(
        f"SELECT (max(completed_at) - min(started_at_epoch_ms)) / 1000.0 FROM {STATUS} "
        "WHERE name = 'noop' AND status = 'SUCCESS'"
    )[0]
    concurrency = args.concurrency or "unlimited"
    return drained(concurrency, args.count, done, capped, float(span), wall)


def pickup(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    worker = spawn(WORKER, args.logs / "peer-dbos-pickup.log")
    dbos = client()
    try:
        first = pickups(lambda n: dbos.enqueue(OPTIONS, n), succeeded, args.count, args.gap_ms, 120)
        warm = first.get_workflow_id()
    finally:
        dbos.destroy()
        stop(worker)
    check_once(args.count + 1, args.count + 1)
    latencies = [
        float(row[0])
        for row in sql(
            f"SELECT started_at_epoch_ms - created_at FROM {STATUS} "
            "WHERE name = 'noop' AND workflow_uuid <> %s",
            [warm],
        )
    ]
    return latency_summary(latencies, args.count, args.gap_ms)


if __name__ == "__main__":
    main({"setup": setup, "noop": noop_throughput, "pickup": pickup})
