"""The worker's periodic duty, the heartbeat: renew the leases this process holds and its
heartbeat row, re-queue the executions of workers that stopped renewing theirs, and give
schedules whose tick passed unstarted their next tick."""

from __future__ import annotations

import logging
import os
import threading

import psycopg
from django.db import connection

from .. import payloads
from ..conf import settings
from ..lease import Lease, elapsed
from ..store import workers
from ..store.base import server_cursor
from ..store.outcomes import reap_expired
from ..store.transitions import after_status_changes
from ..triggers.schedules import advance_due
from .base import Identity
from .connections import DB_ERRORS, raw_connection
from .holdings import Holdings, Key

logger = logging.getLogger("django_conductor.worker")


class Heartbeat:
    def __init__(self, identity: Identity, holdings: Holdings, finished: threading.Event):
        self.identity = identity
        self.holdings = holdings
        self.finished = finished

    def run(self) -> None:
        """Beat until everything is handed back, not just until a stop is asked: executions
        still finishing within the shutdown grace keep their leases."""
        while not self.finished.wait(settings.HEARTBEAT_INTERVAL):
            try:
                self.beat()
            except DB_ERRORS as exc:
                logger.warning("Heartbeat failed (%s); will retry", exc)
                connection.close()
        connection.close()

    def beat(self) -> None:
        """Renew leases and the heartbeat row, then re-queue dead workers' executions."""
        identity = self.identity
        conn = raw_connection()
        with server_cursor(conn) as cursor:
            workers.beat(
                cursor,
                worker=identity.worker_id,
                host=identity.host,
                pid=os.getpid(),
                queues=payloads.dumps(identity.queues),
                tasks=payloads.dumps(identity.task_names),
                concurrency=identity.concurrency,
            )
        self.renew_leases(conn)
        with conn.transaction(), server_cursor(conn) as cursor:
            reaped = reap_expired(cursor)
            after_status_changes(cursor, reaped)
        if reaped:
            logger.warning(
                "Re-queued %d executions whose worker stopped renewing its lease: %s",
                len(reaped),
                [change.id for change in reaped],
                extra={"action": "reap", "worker_id": identity.worker_id},
            )
        with conn.transaction(), server_cursor(conn) as cursor:
            # Ticks that passed with nobody to start them (cancelled, or no worker ran).
            advance_due(cursor, identity.task_names)
        with server_cursor(conn) as cursor:
            workers.forget_dead_workers(cursor, settings.LEASE * 4)

    def renew_leases(self, conn: psycopg.Connection) -> None:
        """Renew every lease this process holds. Rows the step writer holds for a moment are
        waited for, never skipped; a row another session keeps locked is given up on after
        a short wait, so that it cannot hold back the renewal of all the others."""
        held = self.holdings.leases()
        renewed = self._renew(conn, held, set(held), wait=False)
        locked = set(held) - {(row.id, row.claims) for row in renewed}
        if locked:
            wait_ms = int(max(0.1, settings.HEARTBEAT_INTERVAL / 2) * 1000)
            try:
                with conn.transaction(), server_cursor(conn) as cursor:
                    workers.lock_timeout(cursor, wait_ms)
                    renewed += self._renew(conn, held, locked, wait=True)
            except psycopg.errors.LockNotAvailable:
                logger.warning(
                    "Could not renew the leases of executions %s: another session keeps "
                    "their rows locked",
                    sorted(key[0] for key in locked),
                    extra={"action": "renew_blocked", "worker_id": self.identity.worker_id},
                )
        self.holdings.request_cancel(row.id for row in renewed if row.cancel_requested)

    def _renew(
        self, conn: psycopg.Connection, held: dict[Key, Lease], keys: set[Key], *, wait: bool
    ) -> list[workers.Renewed]:
        """Renew ``keys``, and this process's view of each one renewed, counted from when
        the statement was sent."""
        lease = settings.LEASE
        sent_at = elapsed()
        with server_cursor(conn) as cursor:
            renewed = workers.renew_leases(
                cursor, worker=self.identity.worker_id, lease=lease, keys=keys, wait=wait
            )
        for row in renewed:
            held[(row.id, row.claims)].renewed(sent_at, lease)
        return renewed
