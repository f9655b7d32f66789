"""The worker threads' own database connections: the errors that mean the database is away,
and a connection checked before an attempt uses it, so that an attempt never starts on one
the server has closed (a restart, a terminated backend)."""

from __future__ import annotations

import select
import threading
import time
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections

#: The server ending a session idle in its transaction too long (a server's
#: idle_in_transaction_session_timeout, a worker frozen mid-transaction) is reported as a
#: transaction error, not a lost connection; the connection is gone all the same.
DB_ERRORS = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.IdleInTransactionSessionTimeout,
)


#: A connection idle this long is polled before it is used again. One in constant use is not:
#: the poll is a system call that gives up the GIL, a cost every attempt would pay, and a
#: busy connection the server closes fails at once, costing no attempt.
IDLE_BEFORE_POLL = 1.0
_used = threading.local()


def raw_connection(db: Any = None):  # type: ignore[no-untyped-def]
    """This thread's Django connection, as the psycopg connection underneath it, opened
    afresh when the server has closed it while it sat idle (a restart, a terminated
    backend), so that an attempt never starts on a connection its first query finds dead."""
    db = db if db is not None else connections[DEFAULT_DB_ALIAS]
    now = time.monotonic()
    idle = now - getattr(_used, "at", 0.0) > IDLE_BEFORE_POLL
    _used.at = now
    if db.connection is not None and _hung_up(db.connection, poll=idle):
        db.close()
    db.ensure_connection()
    return db.connection


def _hung_up(conn: psycopg.Connection, *, poll: bool) -> bool:
    """A connection libpq knows is broken; with ``poll``, also an idle one that has
    something to read, which is the server saying goodbye (its last message, or the end
    of the stream): one poll, no round trip."""
    pgconn = conn.pgconn
    if pgconn.status != psycopg.pq.ConnStatus.OK:
        return True
    if not poll or pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([pgconn.socket], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
