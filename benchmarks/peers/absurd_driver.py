"""Workloads 1 (no-op throughput) and 3 (pickup latency) on Absurd, through its Python SDK's
documented API (``Absurd``, ``register_task``, ``spawn``, ``create_queue``/``drop_queue``) and
its ``start_worker`` loop at its defaults, in a process of its own (``absurd_app.py``). The
schema comes from PyPI too: ``absurdctl init`` applies the SQL bundled in the ``absurdctl``
package (it runs ``psql``). Timings come from the queue's task and run rows (``enqueue_at``,
``started_at``, ``completed_at``), which Absurd's SQL functions stamp with the database clock."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import quote

import common
import psycopg
from absurd_sdk import Absurd
from common import (
    HERE,
    DriverFailure,
    drain_backlog,
    drained,
    latency_summary,
    main,
    pickups,
    spawn,
    stop,
)
from psycopg.conninfo import conninfo_to_dict

CONNINFO = os.environ["BENCH_PEER_CONNINFO"]
QUEUE = "default"  # as in absurd_app.py
WORKER = [sys.executable, str(HERE / "absurd_app.py")]
TASKS = f"absurd.t_{QUEUE}"
RUNS = f"absurd.r_{QUEUE}"


def sql(query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(CONNINFO, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def database_uri() -> str:
    """The peer's database as a URI, the form ``absurdctl`` hands to psql."""
    parts = conninfo_to_dict(CONNINFO)
    user = quote(parts.get("user", ""), safe="")
    if parts.get("password"):
        user += ":" + quote(str(parts["password"]), safe="")
    host = parts.get("host", "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{'@' if user else ''}{host}{port}/{quote(parts['dbname'])}"


def reset() -> None:
    """A fresh queue, through the SDK: dropping one removes its tables."""
    client = Absurd(CONNINFO, queue_name=QUEUE)
    try:
        client.drop_queue(QUEUE)
        client.create_queue(QUEUE)
    finally:
        client.close()


def completed() -> int:
    return int(sql(f"SELECT count(*) FROM {TASKS} WHERE state = 'completed'")[0][0])


#: The peer's names for a job done, waiting and running.
STATUSES = common.Statuses("completed", "pending", "running", "tasks")


def check_once(expected_done: int, total: int, interrupted: int = 0) -> None:
    """A task with a second run, or a second attempt, ran more than once."""
    twice = sql(
        f"SELECT count(*) FROM (SELECT task_id FROM {RUNS} WHERE started_at IS NOT NULL "
        "GROUP BY task_id HAVING count(*) > 1) AS t"
    )[0][0]
    retried = sql(f"SELECT count(*) FROM {TASKS} WHERE attempts > 1")[0][0]
    common.check_once(
        dict(sql(f"SELECT state, count(*) FROM {TASKS} GROUP BY 1")),
        twice + retried,
        STATUSES,
        expected_done,
        total,
        interrupted,
    )


def setup(args: argparse.Namespace) -> dict[str, Any]:
    absurdctl = Path(sys.executable).with_name("absurdctl")
    if not absurdctl.exists():
        raise DriverFailure("absurdctl (which brings Absurd's schema) is not installed")
    if shutil.which("psql") is None:
        raise DriverFailure("absurdctl init needs psql, which is not on PATH")
    done = subprocess.run(
        [str(absurdctl), "init", "--database", database_uri()],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise DriverFailure(f"absurdctl init failed: {lines[-1] if lines else done.returncode}")
    reset()
    sdk = version("absurd-sdk")
    (schema,) = sql("SELECT absurd.get_schema_version()")[0]
    return {"version": sdk if schema == sdk else f"{sdk} (schema {schema})"}


def spawn_noops(client: Absurd, numbers: range) -> None:
    for n in numbers:
        client.spawn("noop", {"n": n}, queue=QUEUE)


def noop_throughput(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    with psycopg.connect(CONNINFO, autocommit=True) as conn:
        client = Absurd(conn, queue_name=QUEUE)
        for start in range(0, args.count, 1000):
            with conn.transaction():
                spawn_noops(client, range(start, min(args.count, start + 1000)))
    sql(f"ANALYZE {TASKS}, {RUNS}")
    options, suffix = [], ""
    if args.concurrency:
        options, suffix = [str(args.concurrency)], f"-c{args.concurrency}"
    log = args.logs / f"peer-absurd-noop{suffix}.log"
    done, capped, wall = drain_backlog([*WORKER, *options], log, completed, args.count, args.cap)
    interrupted = (args.concurrency or 1) if capped else 0
    check_once(done if capped else args.count, args.count, interrupted)
    (span,) = sql(
        f"SELECT extract(epoch FROM max(completed_at) - min(started_at))::float FROM {RUNS} "
        "WHERE state = 'completed'"
    )[0]
    return drained(args.concurrency or 1, args.count, done, capped, span, wall)


def pickup(args: argparse.Namespace) -> dict[str, Any]:
    reset()
    worker = spawn(WORKER, args.logs / "peer-absurd-pickup.log")
    try:
        with psycopg.connect(CONNINFO, autocommit=True) as conn:
            client = Absurd(conn, queue_name=QUEUE)
            warm = pickups(
                lambda n: client.spawn("noop", {"n": n}, queue=QUEUE),
                completed,
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
            f"SELECT extract(epoch FROM r.started_at - t.enqueue_at)::float * 1000 "
            f"FROM {TASKS} t JOIN {RUNS} r ON r.task_id = t.task_id WHERE t.task_id <> %s",
            [warm["task_id"]],
        )
    ]
    return latency_summary(latencies, args.count, args.gap_ms)


if __name__ == "__main__":
    main({"setup": setup, "noop": noop_throughput, "pickup": pickup})
