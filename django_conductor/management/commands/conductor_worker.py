"""``manage.py conductor_worker``: a thin shell around ``Worker``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_conductor.exceptions import TablesMissing, WorkerFailed
from django_conductor.options import queue_problem
from django_conductor.worker import Worker

VERBOSITY_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def queue_name(value: str) -> str:
    problem = queue_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


class Command(BaseCommand):
    help = "Run a django_conductor worker: claim ready executions and run them."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--queue",
            "-q",
            dest="queues",
            action="append",
            type=queue_name,
            default=[],
            help="Serve this queue (repeat for several). Default: every queue.",
        )
        parser.add_argument(
            "--concurrency",
            "-c",
            type=positive_int,
            default=None,
            help="Executions run at once, one thread each. Default: CONDUCTOR_CONCURRENCY (10).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Run what is ready now, then exit 0 (for scripts and tests).",
        )
        parser.add_argument(
            "--worker-id",
            default=None,
            help="A name for this worker in leases and heartbeats. Default: host-pid-random.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["verbosity"])
        worker = Worker(
            queues=options["queues"],
            concurrency=options["concurrency"],
            worker_id=options["worker_id"],
            burst=options["burst"],
        )
        try:
            worker.run()
        except (TablesMissing, WorkerFailed) as exc:
            raise CommandError(str(exc)) from None

    def _configure_logging(self, verbosity: int) -> None:
        level = VERBOSITY_LEVELS.get(verbosity, logging.DEBUG)
        root = logging.getLogger("django_conductor")
        root.setLevel(level)
        if not root.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            root.addHandler(handler)
