"""Group commit for step records: the steps that a worker's threads finish at about the same
time are written by one statement in one commit, and each thread goes on only once its own
record is committed. Durability per step is unchanged; commits per step drop. A record that
PostgreSQL refuses fails alone: the batch is split until the others are written."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError, connection

from . import payloads, sql
from .exceptions import StepResultError

logger = logging.getLogger("django_conductor.worker")


class StepWriterClosed(Exception):
    """The worker is stopping; nothing more is recorded."""


class StepWriterUnavailable(Exception):
    """The writer lost its database connection; the step was not recorded."""


@dataclass
class StepRecord:
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
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.failure:
            self.failure = payloads.storable_text(self.failure)


class StepWriter:
    """A thread with its own connection that writes whatever records are waiting, so
    that records arriving while one batch commits go out together in the next."""

    def __init__(self) -> None:
        self._waiting: list[StepRecord] = []
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="conductor-step-writer", daemon=True)
        self._thread.start()

    def record(self, record: StepRecord) -> bool:
        """Block until ``record`` is committed; False when its claim lost the execution."""
        with self._lock:
            if self._closed:
                raise StepWriterClosed()
            self._waiting.append(record)
            self._lock.notify()
        record.done.wait()
        if record.error is not None:
            raise record.error
        return record.written

    def close(self) -> None:
        """Write what is waiting, then stop; later records raise ``StepWriterClosed``."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._waiting and not self._closed:
                        self._lock.wait()
                    batch, self._waiting = self._waiting, []
                if not batch:
                    return  # closed, and nothing left to write
                self._write(batch)
        finally:
            connection.close()

    def _write(self, batch: list[StepRecord]) -> None:
        try:
            try:
                written = self._insert_each_good(batch)
            except (OperationalError, InterfaceError, psycopg.OperationalError):
                connection.close()  # the database went away: reconnect and write again
                written = self._insert_each_good(batch)
        except BaseException as exc:  # every waiter learns why, none waits forever
            connection.close()
            error = StepWriterUnavailable(f"Could not record the step: {exc}")
            error.__cause__ = exc
            for record in batch:
                record.error = error
        else:
            for record in batch:
                stored = written.get((record.execution_id, record.name))
                if stored is not None:
                    record.written = True
                    record.recorded_wake_at, record.over = stored
        finally:
            for record in batch:
                record.done.set()

    def _insert_each_good(self, batch: list[StepRecord]) -> dict[tuple[Any, Any], tuple[Any, bool]]:
        """``_insert``; when PostgreSQL refuses a value in the batch, the halves are written
        apart (each statement commits on its own) until the record that holds it fails
        alone with ``StepResultError``. A data error never counts as a lost database."""
        try:
            return self._insert(batch)
        except payloads.UNSTORABLE as exc:
            if len(batch) > 1:
                half = len(batch) // 2
                return {
                    **self._insert_each_good(batch[:half]),
                    **self._insert_each_good(batch[half:]),
                }
            (record,) = batch
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
            return {}

    def _insert(self, batch: list[StepRecord]) -> dict[tuple[Any, Any], tuple[Any, bool]]:
        connection.ensure_connection()
        columns = sql.columns(
            batch,
            ids="execution_id",
            claims="claims",
            names="name",
            kinds="kind",
            results="result",
            errors="failure",
            wake_ats="wake_at",
            wake_ins="wake_in",
        )
        now = time.monotonic()
        columns["started_agos"] = [now - r.began for r in batch]
        columns["finished_agos"] = [None if r.ended is None else now - r.ended for r in batch]
        with sql.server_cursor(connection.connection) as cursor:
            cursor.execute(sql.RECORD_STEPS, columns, prepare=True)
            return {(row[0], row[1]): (row[2], row[3]) for row in cursor.fetchall()}
