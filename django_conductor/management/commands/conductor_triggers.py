"""``manage.py conductor_triggers``: install the database-row triggers the tasks' ``on_model``
subscriptions ask for and drop the others (``migrate`` does the same)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_conductor.triggers.rows import sync


class Command(BaseCommand):
    help = "Install the row triggers of the tasks' on_model subscriptions; drop the others."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--database", default="default", help="Default: default.")

    def handle(self, *args: Any, **options: Any) -> None:
        installed, dropped, missing = sync(options["database"])
        for trigger in installed:
            self.stdout.write(f"Installed {trigger.name} on {trigger.table} for {trigger.task}")
        for old in dropped:
            self.stdout.write(f"Dropped {old.name} on {old.table}")
        for problem in missing:
            self.stderr.write(f"Not installed: {problem}")
        if not (installed or dropped or missing):
            self.stdout.write("The row triggers are up to date.")
