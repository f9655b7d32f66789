"""``manage.py demo``: migrate, invoke every example task, run a worker in this process
until they are all done, and show what happened, step by step, in a table."""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from django_conductor.models import FINISHED
from django_conductor.worker import Worker
from orders import demo

ADMIN_URL = "http://127.0.0.1:8000/admin/django_conductor/execution/"
TICK = 0.5


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return number


class Command(BaseCommand):
    help = "Run the example tasks end to end with an in-process worker and report on them."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--timeout",
            type=positive_float,
            default=60.0,
            help="Give up after this many seconds (default 60).",
        )
        parser.add_argument(
            "--sleep",
            type=positive_float,
            default=2.0,
            help="How long the welcome-reminder sleeps, in seconds (default 2).",
        )
        parser.add_argument("--username", default="admin", help="Admin login (default admin).")
        parser.add_argument("--password", default="admin", help="Admin password (default admin).")

    def handle(self, *args: Any, **options: Any) -> None:
        began = time.monotonic()
        database = connection.settings_dict
        self.stdout.write(f"Database: {database['NAME']} on {database['HOST'] or 'localhost'}")
        call_command("migrate", verbosity=0, interactive=False)
        created = demo.ensure_admin(options["username"], options["password"])
        self.stdout.write(
            f"Admin login {'created' if created else 'reset'}: "
            f"username {options['username']!r}, password {options['password']!r}"
        )

        started = demo.start_examples(options["sleep"])
        self.stdout.write(self.style.MIGRATE_HEADING("\nInvoked, in one transaction:"))
        for line in started.lines:
            self.stdout.write(f"  {line}")

        self.stdout.write(self.style.MIGRATE_HEADING("\nRunning a worker (4 threads):"))
        unfinished = self._run_worker(started.ids, options["timeout"])

        executions = demo.execution_tree(started.ids)
        self.stdout.write(self.style.MIGRATE_HEADING("\nExecutions:"))
        for line in demo.summary_table(executions):
            self.stdout.write(f"  {line}")
        self._side_effects(started)
        self.stdout.write(f"\nDemo took {time.monotonic() - began:.1f}s.")
        self._admin_hint(options["username"], options["password"])

        failed = [e for e in executions if e.status != "completed"]
        if unfinished or failed:
            raise CommandError(
                f"{len(failed)} demo execution(s) did not complete: "
                + ", ".join(f"#{e.pk} {e.task_name} ({e.status})" for e in failed)
            )
        self.stdout.write(self.style.SUCCESS("All demo executions completed."))

    def _run_worker(self, ids: list[int], timeout: float) -> list[Any]:
        """Run the worker on a thread, print progress, stop it once all is finished."""
        worker = Worker(install_signal_handlers=False, concurrency=4)
        thread = threading.Thread(target=worker.run, name="demo-worker", daemon=True)
        thread.start()
        began = time.monotonic()
        unfinished: list[Any] = []
        try:
            while True:
                executions = demo.execution_tree(ids)
                counts = demo.status_counts(executions)
                elapsed = time.monotonic() - began
                self.stdout.write(f"  {elapsed:5.1f}s  " + self._counts(counts))
                unfinished = [e for e in executions if e.status not in FINISHED]
                if not unfinished:
                    break
                if not thread.is_alive():
                    self.stdout.write(self.style.ERROR("  The worker stopped unexpectedly."))
                    break
                if elapsed >= timeout:
                    self._report_timeout(unfinished, timeout)
                    break
                time.sleep(TICK)
        finally:
            worker.stop(now=bool(unfinished))
            thread.join(timeout=15)
        return unfinished

    def _counts(self, counts: Any) -> str:
        order = ("pending", "running", "sleeping", "waiting", "completed", "failed", "cancelled")
        return "  ".join(f"{status} {counts[status]}" for status in order if counts[status])

    def _report_timeout(self, unfinished: list[Any], timeout: float) -> None:
        self.stdout.write(self.style.ERROR(f"  Timed out after {timeout:g}s; not finished:"))
        for e in unfinished:
            detail = f"due {timezone.localtime(e.run_at):%H:%M:%S}" if e.run_at else "not due"
            if e.error:
                detail += f", last error: {e.error}"
            self.stdout.write(
                f"    #{e.pk} {e.task_name}: {e.status}, "
                f"attempt {e.attempts}/{e.max_attempts}, {detail}"
            )

    def _side_effects(self, started: demo.Started) -> None:
        counts = demo.side_effects(started)
        text = ", ".join(f"{done} {what}" for what, done, _expected in counts)
        exact = all(done == expected for _what, done, expected in counts)
        verdict = (
            "each exactly once"
            if exact
            else "expected " + ", ".join(f"{expected} {what}" for what, _done, expected in counts)
        )
        self.stdout.write(f"\nSide effects: {text} ({verdict}).")

    def _admin_hint(self, username: str, password: str) -> None:
        self.stdout.write(
            "\nSee it in the admin:\n"
            "  python example_project/manage.py runserver\n"
            f"  then open {ADMIN_URL}\n"
            f"  and log in as {username!r} with password {password!r}."
        )
