"""Group commit for step records: the steps that a worker's threads finish at about the same
time are written by one statement in one commit, and each thread goes on only once its own
record is committed. A record that PostgreSQL refuses fails alone: the batch is split until
the others are written."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from . import payloads
from .exceptions import StepResultError
from .group_commit import GroupWriter, Request
from .refusals import write_around_refusals
from .store.base import server_cursor
from .store.steps import StepWritten, record_steps, still_held

logger = logging.getLogger("django_conductor.worker")

#: Recorded steps by (execution, name).
Written = dict[tuple[int, str], StepWritten]


@dataclass(kw_only=True)
class StepRecord(Request):
    """One step to record. Times are ``time.monotonic()`` readings that the writer turns
    into the database's time when it writes them: the database's clock is the only one."""

    execution_id: int
    claims: int
    name: str
    kind: str
    result: str | None = None
    #: The step's error when its function raised: it is drawn, and runs again on replay.
    failure: str = ""
    began: float = field(default_factory=time.monotonic)
    ended: float | None = None
    #: A sleep's wake time: absolute (``sleep_until``) or seconds from now (``sleep``).
    wake_at: datetime | None = None
    wake_in: float | None = None
    # What the writer learned:
    written: bool = False
    recorded_wake_at: datetime | None = None
    over: bool = False

    def __post_init__(self) -> None:
        if self.failure:
            self.failure = payloads.storable_text(self.failure)


class StepWriter(GroupWriter[StepRecord]):
    what = "record the step"

    def record(self, record: StepRecord) -> bool:
        """Block until ``record`` is committed; False when its claim lost the execution."""
        self.submit(record)
        return record.written

    def _write(self, batch: list[StepRecord]) -> list[StepRecord]:
        written, locked = self._insert_each_good(batch)
        again = []
        for record in batch:
            stored = written.get((record.execution_id, record.name))
            if stored is not None:
                record.written = True
                record.recorded_wake_at, record.over = stored.wake_at, stored.over
            elif record.execution_id in locked and record.error is None:
                again.append(record)
        return again

    def _insert_each_good(self, batch: list[StepRecord]) -> tuple[Written, set[int]]:
        """``_insert``, around any record PostgreSQL refuses: that one fails alone with
        ``StepResultError``."""
        return write_around_refusals(
            batch,
            self._insert,
            self._refused,
            lambda first, second: ({**first[0], **second[0]}, first[1] | second[1]),
        )

    def _refused(self, record: StepRecord, exc: BaseException) -> tuple[Written, set[int]]:
        logger.error(
            "PostgreSQL refused step %r of execution %s (%s); failing its attempt",
            record.name,
            record.execution_id,
            payloads.first_line(exc),
            extra={"action": "step_refused", "execution_id": record.execution_id},
        )
        record.error = StepResultError(
            f"Step {record.name!r} could not be stored: PostgreSQL refused it "
            f"({payloads.first_line(exc)}). Its result "
            "or name holds text that PostgreSQL cannot store (a NUL character, a lone "
            "surrogate, or a character the database's encoding lacks): return only text "
            "it can store, e.g. binary data as base64."
        )
        record.error.__cause__ = exc
        return {}, set()

    def _insert(self, batch: list[StepRecord]) -> tuple[Written, set[int]]:
        """The records written, and the executions whose rows another session keeps locked."""
        connection.ensure_connection()
        now = time.monotonic()
        started_agos = [now - r.began for r in batch]
        finished_agos = [None if r.ended is None else now - r.ended for r in batch]
        with server_cursor(connection.connection) as cursor:
            recorded = record_steps(cursor, batch, started_agos, finished_agos)
            written = {(step.execution_id, step.name): step for step in recorded}
            left_out = [r for r in batch if (r.execution_id, r.name) not in written]
            if not left_out:
                return written, set()
            # Skipped for a lock, or no longer this worker's: only the first are held.
            held = still_held(cursor, ((r.execution_id, r.claims) for r in left_out))
            return written, {claim.id for claim in held}
