"""Query counts and server time of the admin's pages on a large executions table.

    createdb -h 127.0.0.1 -U postgres conductor_admin_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conductor_admin_bench \\
        python benchmarks/admin_pages.py --rows 1000000

It migrates that database, REPLACES ITS EXECUTIONS with ``--rows`` generated ones (one
INSERT ... SELECT generate_series; a month of history with a live tail), then requests each
page through Django's test client and prints a Markdown table: queries per page, the median,
best and worst server time over ``--runs`` runs after one warm-up, and the part of it spent
in SQL (the rest is Django rendering the page).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402
from django.urls import reverse  # noqa: E402

#: Task names registered by the test app, so the task filter offers them.
TASKS = ["order", "echo", "double", "reminder", "record", "noop", "parent", "slow"]

#: Rows older than the live tail finished long ago; the tail is today's traffic.
FILL = """
INSERT INTO django_conductor_execution (
    task_name, queue, payload, status, priority, run_at, attempts, max_attempts, claims,
    dedupe_key, superseded, wake_pending, error, created_at, started_at, finished_at, result,
    event_name, lease_owner, lease_expires_at)
SELECT
    (%(tasks)s::text[])[1 + (g * 7) %% cardinality(%(tasks)s::text[])],
    CASE g %% 10 WHEN 0 THEN 'emails' WHEN 1 THEN 'reports' ELSE 'default' END,
    jsonb_build_object('order_id', g),
    s.status,
    CASE WHEN g %% 50 = 0 THEN 10 ELSE 0 END,
    CASE s.status WHEN 'sleeping' THEN now() + interval '6 hours'
                  WHEN 'waiting' THEN NULL ELSE t.created END,
    CASE s.status WHEN 'pending' THEN 0 WHEN 'failed' THEN 3 ELSE 1 END,
    3,
    CASE s.status WHEN 'pending' THEN 0 ELSE 1 END,
    CASE WHEN g %% 10 < 3 THEN 'order-' || g END,
    false, false,
    CASE s.status WHEN 'failed' THEN 'PaymentGatewayTimeout: no answer within 10 s'
                  WHEN 'cancelled' THEN 'Cancelled by user' ELSE '' END,
    t.created,
    CASE WHEN s.status <> 'pending' THEN t.created + interval '1 second' END,
    CASE WHEN s.status IN ('completed', 'failed', 'cancelled')
         THEN t.created + interval '3 seconds' END,
    CASE s.status WHEN 'completed' THEN jsonb_build_object('ok', true) END,
    'conductor.invoke',
    CASE s.status WHEN 'running' THEN 'bench-1-abc' END,
    CASE s.status WHEN 'running' THEN now() + interval '30 seconds' END
FROM generate_series(1, %(rows)s) AS g,
LATERAL (SELECT now() - (%(rows)s - g) * interval '2.5 seconds' AS created) AS t,
LATERAL (SELECT CASE
    WHEN g <= %(rows)s - %(tail)s THEN
        CASE WHEN g %% 1000 < 965 THEN 'completed' WHEN g %% 1000 < 990 THEN 'failed'
             ELSE 'cancelled' END
    ELSE
        CASE WHEN g %% 100 < 50 THEN 'pending' WHEN g %% 100 < 80 THEN 'completed'
             WHEN g %% 100 < 90 THEN 'sleeping' WHEN g %% 100 < 95 THEN 'waiting'
             WHEN g %% 100 < 97 THEN 'running' ELSE 'failed' END
    END AS status) AS s
"""

FAILURES = """
INSERT INTO django_conductor_failedexecution
    (execution_id, task_name, error, traceback, attempts, failed_at)
SELECT id, task_name, error, 'Traceback (most recent call last):\n' || error, attempts,
       finished_at
FROM django_conductor_execution WHERE status = 'failed'
"""

#: Twenty steps, a day's sleep and a child wait for the execution the detail page shows.
STEPS = """
INSERT INTO django_conductor_step
    (execution_id, name, kind, result, error, attempt, started_at, finished_at, wake_at)
SELECT %(id)s, 'step-' || n, 'step', jsonb_build_object('n', n), '', 1,
       now() - interval '1 day' + n * interval '1 second',
       now() - interval '1 day' + n * interval '1 second' + interval '200 ms', NULL
FROM generate_series(1, 20) AS n
UNION ALL
SELECT %(id)s, 'wait-a-day', 'sleep', NULL, '', 1, now() - interval '1 day' + interval '30 s',
       NULL, now() - interval '10 minutes'
"""


def build(rows: int) -> int:
    """Replace the tables' rows with ``rows`` executions; returns the detail page's id."""
    tail = min(20_000, rows // 10)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_conductor_step, django_conductor_failedexecution, "
            "django_conductor_execution, django_conductor_workerheartbeat RESTART IDENTITY"
        )
        started = time.perf_counter()
        cursor.execute(FILL, {"rows": rows, "tail": tail, "tasks": TASKS})
        cursor.execute(FAILURES)
        detail = rows - 100
        parent = rows - 200
        cursor.execute(STEPS, {"id": detail})
        cursor.execute(
            "UPDATE django_conductor_execution SET parent_id = %s, parent_step = 'child-' || id "
            "WHERE id BETWEEN %s AND %s",
            [parent, parent + 1, parent + 30],
        )
        cursor.execute(
            "INSERT INTO django_conductor_workerheartbeat "
            "(worker_id, host, pid, queues, concurrency, started_at, last_seen_at) "
            "VALUES ('bench-1-abc', 'bench', 4242, '[]', 10, now(), now())"
        )
        print(f"inserted {rows:,} executions in {time.perf_counter() - started:.1f} s")
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_conductor_execution")
        cursor.execute("VACUUM ANALYZE django_conductor_step")
        cursor.execute("VACUUM ANALYZE django_conductor_failedexecution")
    return detail


def pages(rows: int, detail: int) -> list[tuple[str, str]]:
    executions = reverse("admin:django_conductor_execution_changelist")
    return [
        ("executions, unfiltered", executions),
        ("executions, page 50", executions + "?p=50"),
        ("executions, status = failed", executions + "?status__exact=failed"),
        ("executions, status = pending", executions + "?status__exact=pending"),
        ("executions, status = completed", executions + "?status__exact=completed"),
        ("executions, task = echo", executions + "?task=echo"),
        ("executions, queue = emails", executions + "?queue=emails"),
        ("executions, search by id", executions + f"?q={rows // 2}"),
        ("executions, search by dedupe key", executions + f"?q=order-{rows // 2}"),
        ("executions, search by task name", executions + "?q=echo"),
        ("children of one execution", executions + f"?parent={rows - 200}"),
        (
            "one execution (20 steps)",
            reverse("admin:django_conductor_execution_change", args=[detail]),
        ),
        ("failed executions", reverse("admin:django_conductor_failedexecution_changelist")),
        ("overview", reverse("admin:django_conductor_execution_overview")),
    ]


def measure(client: Client, path: str, runs: int) -> tuple[int, list[float], list[float]]:
    """Queries of the last run, then per run: the whole request, and its SQL alone (ms)."""
    client.get(path)  # warm-up: caches, plans, the connection
    times, sql_times = [], []
    queries = 0
    for _ in range(runs):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
        queries = len(captured.captured_queries)
        sql_times.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
    return queries, times, sql_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the rows already there")
    options = parser.parse_args()
    if "DATABASE_URL" not in os.environ:
        sys.exit("Set DATABASE_URL to a scratch database: this script replaces its executions.")
    call_command("migrate", verbosity=0)
    if options.reuse:
        with connection.cursor() as cursor:
            cursor.execute("SELECT max(id) FROM django_conductor_execution")
            options.rows = cursor.fetchone()[0]
        detail = options.rows - 100
    else:
        detail = build(options.rows)
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    # The test client's host; the test environment's template instrumentation would slow
    # every page, so only this one setting is borrowed from it.
    override_settings(ALLOWED_HOSTS=["testserver"]).enable()
    print(f"\n{options.rows:,} executions, {options.runs} runs per page after a warm-up\n")
    print("| page | queries | median ms | best ms | worst ms | SQL ms (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, path in pages(options.rows, detail):
        queries, times, sql_times = measure(client, path, options.runs)
        print(
            f"| {name} | {queries} | {statistics.median(times):.1f} | {min(times):.1f} "
            f"| {max(times):.1f} | {statistics.median(sql_times):.1f} |"
        )


if __name__ == "__main__":
    main()
