"""What a replay works with: the recorded steps a claim brings, the event a handler gets, and
the two ways an attempt unwinds that no handler may catch (parking, and a lost lease)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .statuses import Status


class Park(BaseException):
    """Unwinds the handler to park the execution; a BaseException so that a handler's
    ``except Exception`` cannot swallow it. ``run_at`` is a time the database gave (a wake
    time, a deadline); ``run_in`` is seconds from the database's now."""

    def __init__(
        self, status: str, run_at: datetime | None = None, *, run_in: float | None = None
    ) -> None:
        super().__init__(status)
        self.status = status
        self.run_at = run_at
        self.run_in = run_in


class WindowClosed(Park):
    """Parks the execution until its task's window opens (``run_at``, on the database's
    clock); like every park, it uses no attempt."""

    def __init__(self, opening: datetime) -> None:
        super().__init__(Status.PENDING, opening)


class LeaseLost(BaseException):
    """Another worker owns the execution now: abandon this attempt without writing."""


@dataclass(frozen=True)
class Event:
    """What a handler receives as ``event``."""

    name: str
    payload: Any
    execution_id: int
    attempt: int
    #: The cron tick this execution runs for; None when it was not started by a schedule.
    scheduled_at: datetime | None = None


@dataclass
class RecordedStep:
    kind: str
    result: Any
    error: str
    finished: bool
    wake_at: datetime | None
    child_id: int | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> tuple[str, RecordedStep]:
        """A step as the claim brings it: a JSON object (``store.claims.STEP_ROW``)."""
        wake_at = row["wake_at"]
        return row["name"], cls(
            kind=row["kind"],
            result=row["result"],
            error=row["error"] or "",
            finished=row["finished"],
            wake_at=datetime.fromisoformat(wake_at) if wake_at else None,
            child_id=row["child_id"],
        )

    @property
    def raised(self) -> bool:
        """A step whose function raised: it is on record to be seen, and runs again."""
        return self.kind == "step" and bool(self.error)
