"""LISTEN/NOTIFY: wake idle workers on new work, waiters on finished work, and workers on a
cancel of what they run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from ..listen_database import connection_params
from .base import FINISHED_CHANNEL, READY_CHANNEL, Cursor, execute

#: A NOTIFY payload must stay under 8000 bytes.
IDS_PER_NOTIFICATION = 400

NOTIFY = "SELECT pg_notify(%s, %s)"


def connect_listener(*channels: str, alias: str = "default") -> psycopg.Connection[Any]:
    """A connection of its own (never Django's), listening on ``channels``, to where
    ``CONDUCTOR_LISTEN_DATABASE`` says."""
    conn = psycopg.connect(**connection_params(alias), autocommit=True)
    with conn.cursor() as cursor:
        for channel in channels:
            execute(cursor, f'LISTEN "{channel}"')
    return conn


def notify_ready(cursor: Cursor, queues: Iterable[str]) -> None:
    for queue in sorted(set(queues)):
        execute(cursor, NOTIFY, (READY_CHANNEL, queue))


def notify_finished(cursor: Cursor, ids: list[int]) -> None:
    notify_ids(cursor, FINISHED_CHANNEL, ids)


def notify_ids(cursor: Cursor, channel: str, ids: list[int]) -> None:
    for start in range(0, len(ids), IDS_PER_NOTIFICATION):
        chunk = ids[start : start + IDS_PER_NOTIFICATION]
        execute(cursor, NOTIFY, (channel, ",".join(map(str, chunk))))


def ids_of(payload: str) -> list[int]:
    return [int(part) for part in payload.split(",") if part.isdigit()]
