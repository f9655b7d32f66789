"""What every statement shares: the one ``execute()`` that all of them pass through (the
hook for counting, tracing and signals), the names of the tables and channels, the statuses
as SQL literals, and the arrays that batch statements take."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

from ..statuses import CLAIMABLE as _CLAIMABLE
from ..statuses import FINISHED as _FINISHED
from ..statuses import LIVE as _LIVE
from ..statuses import Status

#: The models' tables; ``tests/test_store.py`` holds them equal to the models' ``_meta``.
EXECUTION = "django_conductor_execution"
STEP = "django_conductor_step"
FAILURES = "django_conductor_failedexecution"
HEARTBEAT = "django_conductor_workerheartbeat"
SCHEDULE = "django_conductor_schedule"
LIMIT = "django_conductor_concurrencylimit"
TABLES = (EXECUTION, STEP, FAILURES, HEARTBEAT, SCHEDULE, LIMIT)
#: The PL/pgSQL functions that migrations create, as ``to_regprocedure`` reads them.
FUNCTIONS = (
    "django_conductor_record_steps(bigint[], int[], text[], text[], jsonb[], text[], float8[], "
    "float8[], timestamptz[], float8[])",
    "django_conductor_claim(text, float8, text[], text[], int, int)",
    "django_conductor_invoke(text, text, jsonb, int, timestamptz, float8, int, text, jsonb, text)",
    "django_conductor_next_due(text[], text[])",
)

#: Channel a worker listens on; the payload is the queue that has new work.
READY_CHANNEL = "django_conductor_ready"
#: The same, for new executions with no concurrency key (neither a batch task's nor a
#: limited one's): they cannot fill a batch, so a worker claims without looking for one.
PLAIN_READY_CHANNEL = "django_conductor_ready_plain"
#: Channel ``ExecutionHandle.wait`` listens on; the payload is comma-separated ids.
FINISHED_CHANNEL = "django_conductor_finished"
#: Channel workers listen on to learn at once that a running execution was cancelled.
CANCEL_CHANNEL = "django_conductor_cancel"


def ready_channel(limit_key: str | None) -> str:
    """Where new executions of a task with this ``Task.limit_key`` are announced."""
    return PLAIN_READY_CHANNEL if limit_key is None else READY_CHANNEL


def literal(status: Status) -> str:
    """A status as it is spelled in a statement: ``'running'``."""
    return f"'{status.value}'"


def literals(statuses: Iterable[Status]) -> str:
    """Statuses as a parenthesised list for ``IN``: ``('pending', 'sleeping')``."""
    return "(" + ", ".join(literal(status) for status in statuses) + ")"


PENDING = literal(Status.PENDING)
RUNNING = literal(Status.RUNNING)
SLEEPING = literal(Status.SLEEPING)
WAITING = literal(Status.WAITING)
COMPLETED = literal(Status.COMPLETED)
FAILED = literal(Status.FAILED)
CANCELLED = literal(Status.CANCELLED)
CLAIMABLE = literals(_CLAIMABLE)
LIVE = literals(_LIVE)
FINISHED = literals(_FINISHED)


def concurrency_key(spec: str, payload: str) -> str:
    """The SQL for a new execution's ``concurrency_key``, from its task's key ``spec`` (an
    SQL text: NULL for a task with no limit, '' for a task-wide limit, else a dotted path
    into the payload) and its ``payload`` (SQL jsonb). Computed by PostgreSQL from the stored
    payload on every path that creates executions, triggers included, so that all agree."""
    return (
        f"(CASE WHEN {spec} IS NULL THEN NULL WHEN {spec} = '' THEN '' "
        f"ELSE left(coalesce({payload} #>> string_to_array({spec}, '.'), ''), 200) END)"
    )


class Cursor(Protocol):
    """A psycopg cursor or Django's wrapper of one."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


def execute(
    cursor: Cursor | psycopg.Cursor[Any],
    statement: str,
    params: Any = None,
    *,
    prepare: bool = False,
) -> Any:
    """Run one statement. Every statement the package sends passes through here (a test
    holds it so). ``prepare`` asks psycopg to prepare it once per connection; it needs a
    server-binding cursor (``server_cursor``), and a connection whose ``prepare_threshold``
    is not None (Django's default is None, which transaction poolers need)."""
    if prepare:
        return cursor.execute(statement, params, prepare=True)  # type: ignore[call-arg]
    return cursor.execute(statement, params)


R = TypeVar("R")


def rows(cursor: Cursor | psycopg.Cursor[Any], row: type[R]) -> list[R]:
    """The statement's rows as ``row``s, read by name from here on."""
    return [row(*values) for values in cursor.fetchall()]


def one(cursor: Cursor | psycopg.Cursor[Any], row: type[R]) -> R | None:
    values = cursor.fetchone()
    return None if values is None else row(*values)


def server_cursor(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
    """A cursor that binds parameters on the server, so that hot statements can be
    prepared once per connection (Django's connections bind on the client by default)."""
    return psycopg.Cursor(conn)


def binding_cursor(alias: str = DEFAULT_DB_ALIAS) -> Any:
    """A cursor of Django's connection ``alias`` that binds parameters on the server: no
    quoting of every value in Python, and, where the project lets psycopg prepare statements
    (``OPTIONS["prepare_threshold"]``; Django turns it off for poolers), a statement run on
    every call is prepared once per connection. Wrapped as Django wraps its own cursors, so
    it runs in the caller's transaction, is logged and counted, and raises Django's errors.
    The connection is looked up once: each attribute read through ``django.db.connection``
    is a thread-local lookup of its own."""
    db: Any = connections[alias]
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(psycopg.Cursor(db.connection))


def columns(records: Sequence[Any], **fields: str) -> dict[str, list[Any]]:
    """One array per statement parameter, for the ``unnest(...)`` batch statements:
    ``columns(batch, ids="id")`` gives ``{"ids": [record.id for record in batch]}``."""
    return {param: [getattr(r, attribute) for r in records] for param, attribute in fields.items()}


def claim_pairs(keys: Iterable[tuple[int, int]]) -> dict[str, list[int]]:
    """The ``ids`` and ``claims`` arrays of claim-fenced batch statements, in id order, the
    order every multi-row lock takes."""
    keys = sorted(keys)
    return {"ids": [key[0] for key in keys], "claims": [key[1] for key in keys]}
