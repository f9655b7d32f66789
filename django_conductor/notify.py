"""LISTEN/NOTIFY plumbing: wake idle workers on new work, wake waiters on finished work."""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from django.db import connections

from .sql import FINISHED_CHANNEL, NOTIFY, READY_CHANNEL

#: A NOTIFY payload must stay under 8000 bytes.
IDS_PER_NOTIFICATION = 400


def connect_listener(*channels: str, alias: str = "default") -> psycopg.Connection:
    """A connection of its own (never Django's), listening on ``channels``."""
    params = connections[alias].get_connection_params()
    params.pop("cursor_factory", None)
    conn = psycopg.connect(**params, autocommit=True)
    for channel in channels:
        conn.execute(f'LISTEN "{channel}"')
    return conn


def notify_ready(cursor, queues: Iterable[str]) -> None:  # type: ignore[no-untyped-def]
    for queue in sorted(set(queues)):
        cursor.execute(NOTIFY, (READY_CHANNEL, queue))


def notify_finished(cursor, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    notify_ids(cursor, FINISHED_CHANNEL, ids)


def notify_ids(cursor, channel: str, ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(ids), IDS_PER_NOTIFICATION):
        chunk = ids[start : start + IDS_PER_NOTIFICATION]
        cursor.execute(NOTIFY, (channel, ",".join(map(str, chunk))))


def ids_of(payload: str) -> list[int]:
    return [int(part) for part in payload.split(",") if part.isdigit()]
