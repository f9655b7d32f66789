"""What the parts of a worker share: who the worker is, as its claims and heartbeat tell the
database, and how each part waits out a database that is away."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import psycopg
from django.db import connection

from ..store.base import server_cursor
from ..store.schema import check_tables
from .connections import DB_ERRORS, raw_connection

logger = logging.getLogger("django_conductor.worker")

MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Identity:
    worker_id: str
    host: str
    queues: list[str]
    concurrency: int
    #: The tasks this process can run; it claims executions of these only.
    task_names: list[str]
    #: The same as one PostgreSQL array literal, sent with every claim as one value.
    tasks_literal: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks_literal", _text_array(self.task_names))


def next_backoff(backoff: float) -> float:
    """Half a second, then doubling, up to ``MAX_BACKOFF``."""
    return min(MAX_BACKOFF, backoff * 2 or 0.5)


def database_trouble(
    identity: Identity, exc: BaseException, backoff: float, stopping: threading.Event
) -> None:
    """Say the database is away, drop this thread's connection, and wait ``backoff``."""
    logger.warning(
        "Database unavailable (%s); retrying in %.1fs",
        exc,
        backoff,
        extra={"action": "database_error", "worker_id": identity.worker_id},
    )
    connection.close()
    stopping.wait(backoff)


def wait_for_database(identity: Identity, stopping: threading.Event) -> bool:
    """Check the tables, waiting out a database that is not up yet (until stopped);
    False when the worker was stopped meanwhile."""
    backoff = 0.0
    while not stopping.is_set():
        try:
            check_tables()
            return True
        except DB_ERRORS as exc:
            backoff = next_backoff(backoff)
            database_trouble(identity, exc, backoff, stopping)
    return False


def raw_cursor() -> psycopg.Cursor:
    """A server-binding cursor on this thread's connection."""
    return server_cursor(raw_connection())


def _text_array(items: list[str]) -> str:
    """A ``text[]`` literal: ``{"a","b\\"c"}``."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"
