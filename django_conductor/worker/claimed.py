"""A claimed execution as a worker holds it, and how one attempt of it ended: the records
that pass between claiming, running and writing outcomes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg

from .. import payloads
from ..clock import DatabaseClock
from ..lease import Lease
from ..replay import RecordedStep
from ..statuses import Status
from ..store.claims import ClaimRow, steps_of


@dataclass(frozen=True)
class Claimed:
    id: int
    task_name: str
    queue: str
    event_name: str
    payload: Any
    attempt: int
    max_attempts: int
    claims: int
    cancel_requested: bool
    steps: dict[str, RecordedStep]
    #: The database's clock as the claim read it, carried on from the time it arrived.
    clock: DatabaseClock
    #: How long this process may act on the claim, by its own clock.
    lease: Lease
    #: Claimed ahead of a free thread: ``attempt`` is the count so far, not yet this claim's
    #: own, which its outcome counts (see ``run_attempt``).
    prefetched: bool = False
    #: The cron tick it runs for, or None.
    scheduled_at: datetime | None = None
    #: When it became due, and the trace context of its invoke (JSON), for telemetry.
    run_at: datetime | None = None
    trace_context: str | None = None

    @property
    def claimed_at(self) -> float:
        return self.clock.arrived

    @property
    def key(self) -> tuple[int, int]:
        """This claim of this execution: a later re-claim of it is another key."""
        return self.id, self.claims

    @classmethod
    def from_row(cls, row: ClaimRow, lease: Lease) -> Claimed:
        return cls(
            id=row.id,
            task_name=row.task_name,
            queue=row.queue,
            event_name=row.event_name,
            payload=payloads.loads(row.payload),
            attempt=row.attempts,
            max_attempts=row.max_attempts,
            claims=row.claims,
            cancel_requested=row.cancel_requested,
            steps=recorded_steps(row.steps),
            clock=DatabaseClock(row.claimed_at),
            lease=lease,
            prefetched=row.prefetched,
            scheduled_at=row.scheduled_at,
            run_at=row.run_at,
            trace_context=row.trace_context,
        )

    def begun(self) -> Claimed:
        """This prefetched claim once a thread has taken it, with its own attempt number."""
        return replace(self, attempt=self.attempt + 1, prefetched=False)

    @property
    def awaits_wake(self) -> bool:
        """A child (or an emitted event) may finish one of this execution's steps at any
        moment."""
        return any(s.kind in ("invoke", "event") and not s.finished for s in self.steps.values())

    def outcome(self, status: str, **fields: Any) -> Outcome:
        """How this attempt ended, fenced on this claim."""
        return Outcome(self.id, self.claims, status, **fields)


def recorded_steps(text: str | None) -> dict[str, RecordedStep]:
    return dict(RecordedStep.from_row(s) for s in payloads.loads(text) or [])


def reread_child_steps(cursor: psycopg.Cursor, claims: list[Claimed]) -> None:
    """Read again the steps of claimed executions that wait on a child, now that the claim
    has committed: a child that finished just before the claim is seen, and one finishing
    after it finds its parent running and flags it (``wake_pending``)."""
    waiting = {claimed.id: claimed for claimed in claims if claimed.awaits_wake}
    if not waiting:
        return
    for found in steps_of(cursor, list(waiting)):
        waiting[found.execution_id].steps.update(recorded_steps(found.steps))


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, as ``store.outcomes.finish_attempts`` writes it."""

    id: int
    claims: int
    status: str
    run_at: datetime | None = None
    run_in: float | None = None
    result: str | None = None
    error: str | None = None
    traceback: str | None = None
    refund: int = 0

    def storable(self, refused: BaseException) -> Outcome:
        """This outcome as any database can store it, after PostgreSQL ``refused`` it: its
        texts in ASCII, and a result it cannot store turned into a failed attempt saying so.
        Applied twice, it changes nothing more."""
        if self.result is None:
            error = None if self.error is None else payloads.ascii_text(self.error)
            tb = None if self.traceback is None else payloads.ascii_text(self.traceback)
            return replace(self, error=error, traceback=tb)
        error = (
            f"The handler's result could not be stored: PostgreSQL refused it "
            f"({payloads.first_line(refused)}). It holds text that PostgreSQL cannot store (a "
            "NUL character, a lone surrogate, or a character the database's encoding lacks): "
            "return only text it can store, e.g. binary data as base64."
        )
        return replace(
            self,
            status=Status.FAILED,
            run_at=None,
            run_in=None,
            result=None,
            refund=0,
            error=payloads.ascii_text(error),
            traceback=None,
        )
