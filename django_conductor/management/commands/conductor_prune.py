"""``manage.py conductor_prune [--dry-run]``: remove the finished executions past their
retention now, as the workers' pruning duty does, for those who would rather run it from
cron."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_conductor.retention import Pruned, due, prune


class Command(BaseCommand):
    help = (
        "Remove finished executions past their retention (CONDUCTOR_RETENTION and the tasks' "
        "remove_on_complete / remove_on_fail), with their steps and failure records."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be removed; remove nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            self.report(due(), "Would remove")
            return
        pruned = prune(wait=True)
        assert pruned is not None  # noqa: S101 (waiting for the lock, it always prunes)
        self.report(pruned, "Removed")

    def report(self, pruned: Pruned, verb: str) -> None:
        for (task, status), count in sorted(pruned.executions.items()):
            self.stdout.write(f"{verb} {count} {status} executions of {task}")
        self.stdout.write(f"{verb} {pruned.total} executions in all.")
