"""Database-row triggers on Django models: ``on_model(Order, "insert")`` starts the task for
every row a statement inserts, whichever way it is written (``save()``, ``bulk_create()``,
``queryset.update()``, ``delete()``, raw SQL), inside the writer's transaction. The
triggers follow the code on ``migrate`` (and ``manage.py conductor_triggers``): those no
task asks for any more are dropped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, transaction

from ..registry import registry
from ..store import row_triggers as store
from ..store.row_triggers import RowTrigger

OPERATIONS = ("insert", "update", "delete")


@dataclass(frozen=True)
class OnModel:
    """A subscription, given in ``task(triggers=[on_model(...)])``. ``model`` is a model
    class or ``"app_label.Model"``, looked up once the apps are ready."""

    model: Any
    operation: str
    columns: tuple[str, ...] | None = None
    when: str | None = None

    def model_class(self) -> Any:
        if isinstance(self.model, str):
            return apps.get_model(self.model)
        return self.model

    def problem(self) -> str | None:
        if self.operation not in OPERATIONS:
            choices = ", ".join(OPERATIONS)
            return f"on_model operation must be one of {choices}, not {self.operation!r}"
        try:
            model = self.model_class()
            meta = model._meta
        except (LookupError, ValueError, AttributeError):
            return f"on_model model must be a model class or 'app_label.Model', not {self.model!r}"
        if self.columns is not None:
            names = {field.name for field in meta.concrete_fields} | {
                field.column for field in meta.concrete_fields
            }
            unknown = [c for c in self.columns if c not in names]
            if unknown or not self.columns:
                return f"on_model columns {unknown or '[]'} are not fields of {meta.label}"
        if self.when is not None and (not isinstance(self.when, str) or not self.when.strip()):
            return f"on_model when= must be an SQL condition over NEW and OLD, not {self.when!r}"
        return None

    @property
    def event_name(self) -> str:
        meta = self.model_class()._meta
        return f"{meta.app_label}.{meta.model_name}.{self.operation}"

    def trigger(self, task: Any, schema: str) -> RowTrigger:
        meta = self.model_class()._meta
        columns = None
        if self.columns is not None:
            by_name = {f.name: f.column for f in meta.concrete_fields}
            columns = tuple(by_name.get(c, c) for c in self.columns)
        return RowTrigger(
            task=task.name,
            queue=task.queue,
            priority=task.priority,
            max_attempts=task.max_attempts,
            limit_key=task.limit_key,
            event=self.event_name,
            operation=self.operation,
            schema=schema,
            table=_table_name(meta.db_table),
            columns=columns,
            when=self.when,
            pk=meta.pk.column,
        )


def on_model(
    model: Any, operation: str, columns: Iterable[str] | None = None, when: str | None = None
) -> OnModel:
    """Start the task for each row of ``model``'s table that a statement inserts, updates
    or deletes (``operation``). The payload is ``{"op", "table", "old", "new"}``, the rows
    as JSON by column, only ``columns`` when given; for an update with ``columns``, only a
    change of one of them counts. ``when`` is an SQL condition over ``NEW`` and ``OLD``
    (``"NEW.total > 100"``). The event name is ``app_label.model.operation``."""
    return OnModel(model, operation, None if columns is None else tuple(columns), when)


def _table_name(db_table: str) -> str:
    """The table's own name: Django's ``'"schema"."table"'`` spelling of a schema-qualified
    table keeps its last part."""
    if db_table.startswith('"') and '"."' in db_table:
        return db_table.rsplit('"."', 1)[1].rstrip('"').replace('""', '"')
    return db_table


def _table_reference(db_table: str) -> str:
    """The table as ``to_regclass`` takes it."""
    if db_table.startswith('"') and '"."' in db_table:
        return db_table
    return store.quote(db_table)


def subscriptions() -> list[tuple[Any, OnModel]]:
    return [
        (task, trigger)
        for task in sorted(registry, key=lambda task: task.name)
        for trigger in task.triggers
        if isinstance(trigger, OnModel) and trigger.problem() is None
    ]


def wanted(cursor: Any, using: str) -> tuple[list[RowTrigger], list[str]]:
    """The triggers the code asks for, and what cannot be installed (a missing table, a
    ``when`` PostgreSQL refuses)."""
    found: list[RowTrigger] = []
    missing: list[str] = []
    for task, subscription in subscriptions():
        meta = subscription.model_class()._meta
        schema = store.table_schema(cursor, _table_reference(meta.db_table))
        if schema is None:
            missing.append(
                f"task {task.name!r} subscribes to {subscription.event_name}, but table "
                f"{meta.db_table!r} does not exist"
            )
            continue
        trigger = subscription.trigger(task, schema)
        try:
            with transaction.atomic(using=using):  # a savepoint, or a transaction of its own
                store.check_when(cursor, trigger)
        except DatabaseError as exc:
            problem = str(exc.__cause__ or exc).splitlines()[0]
            missing.append(
                f"task {task.name!r}'s when= on {subscription.event_name} does not work on "
                f"its table: {problem}"
            )
            continue
        found.append(trigger)
    return found, missing


def sync(using: str = "default") -> tuple[list[RowTrigger], list[store.Installed], list[str]]:
    """Install the wanted triggers that are not there and drop the others, in one
    transaction: the installed, the dropped, and what could not be installed. Without the
    executions table (migrated back to zero, or another database) none is wanted."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        executions = store.execution_table(cursor)
        triggers, missing = wanted(cursor, using) if executions is not None else ([], [])
        names = {trigger.name for trigger in triggers}
        present = store.installed(cursor)
        stale = [old for old in present if old.name not in names]
        for old in stale:
            store.drop(cursor, old)
        there = {old.name for old in present}
        new = [trigger for trigger in triggers if trigger.name not in there]
        if executions is not None:
            for trigger in new:
                store.install(cursor, trigger, executions)
    return new, stale, missing


def not_installed(using: str = "default") -> list[str]:
    """Subscriptions whose trigger is not in the database, for the system check."""
    with connections[using].cursor() as cursor:
        triggers, missing = wanted(cursor, using)
        present = {old.name for old in store.installed(cursor)}
    return missing + [
        f"the trigger for task {t.task!r} on {t.event} is not installed"
        for t in triggers
        if t.name not in present
    ]
