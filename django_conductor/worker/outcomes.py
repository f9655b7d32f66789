"""Writing what attempts came to: the outcomes gathered since the last write, in one
statement and one commit; after a stop, those of the executions finishing within the grace;
at the end, whatever this process still holds, handed back."""

from __future__ import annotations

import logging
import operator
import threading
import time

from .. import payloads
from ..conf import settings
from ..refusals import write_around_refusals
from ..store.base import server_cursor
from ..store.outcomes import finish_attempts, hand_back
from ..store.transitions import StatusChange, after_status_changes
from .base import Identity, database_trouble
from .claimed import Outcome
from .connections import DB_ERRORS, raw_connection
from .holdings import Holdings

logger = logging.getLogger("django_conductor.worker")


class OutcomeWriter:
    def __init__(self, identity: Identity, holdings: Holdings) -> None:
        self.identity = identity
        self.holdings = holdings

    def flush(self) -> None:
        """Write every outcome gathered so far in one transaction."""
        batch = self.holdings.take_outcomes()
        if not batch:
            return
        batch.sort(key=lambda outcome: outcome.id)  # rows are locked in id order everywhere
        settled: list[Outcome] = []
        try:
            changes = self._finish_each_good(batch, settled)
        except BaseException:  # keep what is not written for the next try
            self.holdings.put_back([o for o in batch if not any(o is s for s in settled)])
            raise
        written = {change.id for change in changes}
        lost = [o.id for o in batch if o.id not in written]
        if lost:
            logger.warning(
                "Lost the lease on executions %s before writing their outcome; "
                "their new owner decides",
                lost,
                extra={"action": "lease_lost", "worker_id": self.identity.worker_id},
            )
        self.holdings.settled(batch)

    def drain(
        self, stopped_hard: threading.Event, wake: threading.Event, stopping: threading.Event
    ) -> None:
        """After a stop: write outcomes while running executions finish, for as long as the
        shutdown grace lasts or until a hard stop."""
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE
        while True:
            try:
                self.flush()
            except DB_ERRORS as exc:
                database_trouble(self.identity, exc, 1.0, stopping)
            if not self.holdings.busy() or stopped_hard.is_set() or time.monotonic() >= deadline:
                return
            wake.wait(0.05)
            wake.clear()

    def hand_back(self) -> None:
        """Give whatever this process still holds back to the queue, without using up its
        attempt; by claim, so that another process with the same worker id keeps its own."""
        try:
            self.flush()
            conn = raw_connection()
            with conn.transaction(), server_cursor(conn) as cursor:
                changes = hand_back(cursor, self.identity.worker_id, self.holdings.keys())
                after_status_changes(cursor, changes)
            if changes:
                logger.warning(
                    "Handed back %d running executions: %s",
                    len(changes),
                    [change.id for change in changes],
                    extra={"action": "hand_back", "worker_id": self.identity.worker_id},
                )
        except DB_ERRORS as exc:
            logger.error(
                "Could not hand back running executions (%s); their leases will expire", exc
            )

    def _finish_each_good(self, batch: list[Outcome], settled: list[Outcome]) -> list[StatusChange]:
        """Write ``batch``, each part in a transaction of its own, adding what is written to
        ``settled``; an outcome PostgreSQL refuses is written as a failed attempt with
        storable text."""

        def refused(outcome: Outcome, exc: BaseException) -> list[StatusChange]:
            storable = outcome.storable(exc)
            if storable == outcome:  # nothing left to make storable: leave it to its lease
                logger.error("Could not write the outcome of execution %s: %s", outcome.id, exc)
                settled.append(outcome)
                return []
            logger.error(
                "PostgreSQL refused the outcome of execution %s (%s); writing it as failed",
                outcome.id,
                payloads.first_line(exc),
                extra={"action": "outcome_refused", "worker_id": self.identity.worker_id},
            )
            changes = self._finish_each_good([storable], [])
            settled.append(outcome)
            return changes

        def write(part: list[Outcome]) -> list[StatusChange]:
            conn = raw_connection()
            with conn.transaction(), server_cursor(conn) as cursor:
                changes = finish_attempts(cursor, part)
                after_status_changes(cursor, changes)
            settled.extend(part)
            return changes

        return write_around_refusals(batch, write, refused, operator.add)
