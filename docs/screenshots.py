"""Take the admin screenshots shown in docs/admin.md, by hand, from realistic demo data.

    createdb -h 127.0.0.1 -U postgres conductor_screens
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/conductor_screens python docs/screenshots.py

It migrates that database, REPLACES ITS EXECUTIONS with a demo set (a busy hour of orders,
invoices and reminders, a backlog, sleepers, failures, workers), serves the example project's
admin on a local port and photographs four pages with the system's headless Chromium.
Needs the ``dev`` extra (Playwright) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import math
import os
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "_static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.staticfiles.handlers import StaticFilesHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.testcases import LiveServerThread  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_conductor.models import Execution, FailedExecution, Step, WorkerHeartbeat  # noqa: E402

NOW = timezone.now()
TASKS = ["process-order", "make-invoice", "welcome-reminder", "sync-warehouse"]
WORKERS = [("web-1", 31207, []), ("web-2", 31188, []), ("batch-1", 8843, ["emails"])]
ERRORS = [
    "PaymentGatewayTimeout: the card network did not answer within 10 s",
    "ConnectionError: warehouse API refused the connection (503)",
    "ValueError: order 2113 has no shipping address",
]


def ago(**kwargs: float) -> timezone.datetime:
    return NOW - timedelta(**kwargs)


def wave(n: int, period: float, low: int, high: int) -> int:
    """A deterministic wobble, so the demo looks busy without randomness."""
    return low + round((high - low) * (0.5 + 0.5 * math.sin(n / period)))


def finished_rows() -> list[Execution]:
    """Two days of history and a busy last hour, for the throughput chart and the counts."""
    rows = []
    for minute in range(60 * 48, 0, -1):
        per_minute = wave(minute, 5.0, 14, 34) if minute <= 60 else wave(minute, 90.0, 0, 3)
        for k in range(per_minute):
            end = ago(minutes=minute, seconds=k * 60 / max(per_minute, 1))
            failed = minute <= 60 and (minute * 7 + k) % 97 == 0
            rows.append(
                Execution(
                    task_name=TASKS[(minute + k) % 4],
                    queue="emails" if (minute + k) % 4 == 2 else "default",
                    payload={"order_id": 1000 + minute * 40 + k},
                    status="failed" if failed else "completed",
                    attempts=3 if failed else 1,
                    max_attempts=3,
                    created_at=end - timedelta(seconds=2.5),
                    run_at=end - timedelta(seconds=2.5),
                    started_at=end - timedelta(seconds=1.9),
                    finished_at=end,
                    error=ERRORS[k % 3] if failed else "",
                    result=None if failed else {"ok": True},
                )
            )
    return rows


def live_rows() -> list[Execution]:
    """What is going on right now: a backlog, sleepers, waiters, runners, failures."""
    rows = []
    for n in range(150):
        due = ago(seconds=130 - n * 0.8)
        rows.append(
            Execution(
                task_name="process-order" if n % 5 else "sync-warehouse",
                queue="emails" if n % 4 == 0 else "default",
                payload={"order_id": 4100 + n},
                dedupe_key=f"order-{4100 + n}",
                created_at=due,
                run_at=due,
            )
        )
    for n in range(40):
        kind = (n * 5 + n // 8) % 8
        created = ago(seconds=40 - n)
        row = Execution(
            task_name=TASKS[n % 4],
            payload={"order_id": 4300 + n},
            created_at=created,
            run_at=created,
            started_at=created + timedelta(seconds=0.4),
            attempts=1,
            max_attempts=5,
            priority=10 if n % 9 == 0 else 0,
        )
        if kind in (0, 4):
            row.status, row.finished_at = "completed", created + timedelta(seconds=1.3 + n % 3)
            row.result = {"invoice": f"INV-{2000 + n}"}
        elif kind == 1:
            worker = WORKERS[n % 3]
            row.status = "running"
            row.lease_owner = f"{worker[0]}-{worker[1]}-a1b2c3"
            row.lease_expires_at = NOW + timedelta(seconds=25)
        elif kind == 2:
            row.task_name, row.queue = "welcome-reminder", "emails"
            row.status, row.run_at = "sleeping", NOW + timedelta(hours=20, minutes=n)
        elif kind == 3:
            row.task_name, row.status, row.run_at = "process-order", "waiting", None
        elif kind == 5:
            row.status, row.attempts, row.max_attempts = "failed", 3, 3
            row.finished_at, row.error = created + timedelta(seconds=2), ERRORS[n % 3]
        elif kind == 6:
            row.status, row.attempts, row.error = "pending", 2, ERRORS[1]
            row.run_at = NOW + timedelta(seconds=25 + n)
        else:
            row.status, row.finished_at = "cancelled", created + timedelta(seconds=1)
            row.error = "Cancelled from the admin"
        rows.append(row)
    return rows


def showcase() -> Execution:
    """One order with every kind of step: work, a day's sleep and a child invoice."""
    t0 = ago(days=1, minutes=6)
    wake = t0 + timedelta(days=1, seconds=2.2)
    order = Execution.objects.create(
        task_name="process-order",
        payload={"order_id": 2041, "amount": "129.00", "email": "ada@example.com"},
        dedupe_key="order-2041",
        status="completed",
        attempts=1,
        max_attempts=5,
        claims=2,
        created_at=t0,
        run_at=wake,
        started_at=t0 + timedelta(seconds=0.4),
        finished_at=wake + timedelta(seconds=5.1),
        result={"order": 2041, "charge": "ch_3MqK2x", "invoice": "INV-2041"},
    )
    invoice = Execution.objects.create(
        task_name="make-invoice",
        payload={"order_id": 2041},
        parent=order,
        parent_step="make-invoice",
        status="completed",
        attempts=1,
        created_at=wake + timedelta(seconds=0.4),
        run_at=wake + timedelta(seconds=0.4),
        started_at=wake + timedelta(seconds=2.9),
        finished_at=wake + timedelta(seconds=4.6),
        result={"number": "INV-2041", "total": "129.00"},
    )
    Step.objects.create(
        execution=invoice,
        name="create-invoice",
        result={"number": "INV-2041", "total": "129.00"},
        started_at=wake + timedelta(seconds=3.0),
        finished_at=wake + timedelta(seconds=4.5),
    )
    steps = [
        ("charge-customer", "step", {"id": "ch_3MqK2x", "amount": "129.00"}, 0.5, 1.7, None),
        ("send-confirmation", "step", {"sent_to": "ada@example.com"}, 1.8, 2.1, None),
        ("wait-a-day", "sleep", None, 2.2, None, wake),
        ("make-invoice", "invoke", {"number": "INV-2041", "total": "129.00"}, None, None, None),
    ]
    for name, kind, result, start, end, wake_at in steps:
        started = t0 + timedelta(seconds=start) if start is not None else wake
        finished = t0 + timedelta(seconds=end) if end is not None else None
        if kind == "invoke":
            finished = wake + timedelta(seconds=4.7)
        Step.objects.create(
            execution=order,
            name=name,
            kind=kind,
            result=result,
            started_at=started,
            finished_at=finished,
            wake_at=wake_at,
            child=invoice if kind == "invoke" else None,
        )
    return order


def failed_showcase() -> Execution:
    """A sync that failed for good at its second step, which is drawn red with its error."""
    t0 = ago(minutes=4)
    error = "ConnectionError: warehouse API answered 503 Service Unavailable"
    sync = Execution.objects.create(
        task_name="sync-warehouse",
        payload={"warehouse": "north", "skus": 412},
        status="failed",
        attempts=3,
        max_attempts=3,
        claims=3,
        created_at=t0,
        run_at=t0 + timedelta(seconds=45.2),
        started_at=t0 + timedelta(seconds=0.3),
        finished_at=t0 + timedelta(seconds=47.1),
        error=error,
    )
    Step.objects.create(
        execution=sync,
        name="fetch-stock",
        result={"skus": 412, "changed": 37},
        started_at=t0 + timedelta(seconds=0.4),
        finished_at=t0 + timedelta(seconds=1.6),
    )
    Step.objects.create(
        execution=sync,
        name="push-to-warehouse",
        error=error,
        attempt=3,
        started_at=t0 + timedelta(seconds=45.3),
        finished_at=t0 + timedelta(seconds=47.0),
    )
    return sync


def demo_data() -> tuple[Execution, Execution]:
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_conductor_step, django_conductor_failedexecution, "
            "django_conductor_execution, django_conductor_workerheartbeat RESTART IDENTITY"
        )
    Execution.objects.bulk_create(finished_rows(), batch_size=2000)
    detail = showcase()
    failed = failed_showcase()
    Execution.objects.bulk_create(live_rows())
    failures = [
        FailedExecution(
            execution=e,
            task_name=e.task_name,
            error=e.error,
            attempts=e.attempts,
            failed_at=e.finished_at,
            traceback=f"Traceback (most recent call last):\n  ...\n{e.error}",
        )
        for e in Execution.objects.filter(status="failed")
    ]
    FailedExecution.objects.bulk_create(failures)
    for host, pid, queues in WORKERS:
        WorkerHeartbeat.objects.create(
            worker_id=f"{host}-{pid}-a1b2c3",
            host=host,
            pid=pid,
            queues=queues,
            concurrency=10,
            started_at=ago(hours=3),
            last_seen_at=ago(seconds=2),
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_conductor_execution")
    return detail, failed


def shoot(base: str, detail: Execution, failed: Execution) -> None:
    from playwright.sync_api import sync_playwright

    pages = [
        ("admin-executions.png", reverse("admin:django_conductor_execution_changelist"), False),
        (
            "admin-execution-detail.png",
            reverse("admin:django_conductor_execution_change", args=[detail.pk]),
            True,
        ),
        (
            "admin-execution-failed.png",
            reverse("admin:django_conductor_execution_change", args=[failed.pk]),
            True,
        ),
        ("admin-overview.png", reverse("admin:django_conductor_execution_overview"), True),
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 960})
        page.goto(base + "/admin/login/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.click("input[type=submit]")
        page.wait_for_url(base + "/admin/")
        # The navigation sidebar folded away, as a person with a narrow screen would.
        page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        for name, path, full_page in pages:
            page.goto(base + path)
            page.screenshot(path=str(OUT / name), full_page=full_page)
            print(f"wrote docs/_static/{name}")
        browser.close()


def main() -> None:
    if "DATABASE_URL" not in os.environ:
        sys.exit("Set DATABASE_URL to a scratch database: this script replaces its executions.")
    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username="admin")
    user.is_staff = user.is_superuser = True
    user.set_password("admin")
    user.save()
    detail, failed = demo_data()
    connection.close()
    server = LiveServerThread("localhost", StaticFilesHandler)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    try:
        OUT.mkdir(exist_ok=True)
        shoot(f"http://localhost:{server.port}", detail, failed)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
