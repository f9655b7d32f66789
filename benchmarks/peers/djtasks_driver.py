"""Workloads 1 (no-op throughput) and 3 (pickup latency) on django-tasks-db, Django's task
framework with its database backend, through the documented API (``@task``, ``enqueue``)
and its ``db_worker`` command at its defaults. Timings come from the result rows'
``enqueued_at``, ``started_at`` and ``finished_at``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djtasks_settings")

import common
import django
from common import (
    drain_backlog,
    drained,
    latency_summary,
    main,
    pickups,
    spawn,
    stop,
)

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402
from djtasks_jobs import noop  # noqa: E402

WORKER = [sys.executable, "-m", "django", "db_worker"]
TABLE = DBTaskResult._meta.db_table


def sql(query: str, params: Any = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return list(cursor.fetchall()) if cursor.description else []


def successful() -> int:
    return DBTaskResult.objects.filter(status="SUCCESSFUL").count()


#: The peer's names for a job done, waiting and running.
STATUSES = common.Statuses("SUCCESSFUL", "READY", "RUNNING", "results")


def check_once(expected_done: int, total: int, interrupted: int = 0) -> None:
    twice = sql(f"SELECT count(*) FROM {TABLE} WHERE jsonb_array_length(worker_ids) > 1")[0][0]
    common.check_once(
        dict(sql(f"SELECT status, count(*) FROM {TABLE} GROUP BY 1")),
        twice,
        STATUSES,
        expected_done,
        total,
        interrupted,
    )


def setup(args: argparse.Namespace) -> dict[str, Any]:
    call_command("migrate", verbosity=0)
    from importlib.metadata import version

    return {"version": version("django-tasks-db")}


def noop_throughput(args: argparse.Namespace) -> dict[str, Any]:
    sql(f"TRUNCATE {TABLE}")
    for start in range(0, args.count, 1000):
        with transaction.atomic():
            for n in range(start, min(args.count, start + 1000)):
                noop.enqueue(n=n)
    sql(f"ANALYZE {TABLE}")
    log = args.logs / "peer-django-tasks-db-noop.log"
    done, capped, wall = drain_backlog([*WORKER, "--batch"], log, successful, args.count, args.cap)
    check_once(done if capped else args.count, args.count, 1 if capped else 0)
    (span,) = sql(
        f"SELECT extract(epoch FROM max(finished_at) - min(started_at))::float FROM {TABLE} "
        "WHERE status = 'SUCCESSFUL'"
    )[0]
    return drained(1, args.count, done, capped, span, wall)


def pickup(args: argparse.Namespace) -> dict[str, Any]:
    sql(f"TRUNCATE {TABLE}")
    worker = spawn(WORKER, args.logs / "peer-django-tasks-db-pickup.log")
    try:
        warm = pickups(lambda n: noop.enqueue(n=n), successful, args.count, args.gap_ms, 300)
    finally:
        stop(worker)
    check_once(args.count + 1, args.count + 1)
    latencies = [
        row[0]
        for row in sql(
            f"SELECT extract(epoch FROM started_at - enqueued_at)::float * 1000 FROM {TABLE} "
            "WHERE id <> %s",
            [warm.id],
        )
    ]
    return latency_summary(latencies, args.count, args.gap_ms)


if __name__ == "__main__":
    main({"setup": setup, "noop": noop_throughput, "pickup": pickup})
