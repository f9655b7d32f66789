"""What one worker process holds: its claims, the outcomes waiting to be written, and how
busy its threads are. The execution threads, the claim loop and the heartbeat all change it,
so it lives behind one lock, and only here."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from ..context import Context
from ..lease import Lease
from .attempt import Claimed, Outcome

Key = tuple[int, int]


@dataclass
class Held:
    """A claim this process holds; ``ctx`` once its attempt has started."""

    claimed: Claimed
    ctx: Context | None = None


class Holdings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Every claim this process holds, by (execution id, claims): a re-claim of an
        #: execution this process had lost is another entry, renewed and ended on its own.
        self.running: dict[Key, Held] = {}
        #: Outcomes of ended attempts, not written yet.
        self.outcomes: list[Outcome] = []
        #: Claims handed to the threads whose attempt has not ended yet.
        self.assigned = 0
        #: Executions whose outcome this process wrote.
        self.processed = 0
        self._longest_queue_wait = 0.0

    def add(self, claims: list[Claimed]) -> None:
        """Claims just made, all handed to the threads."""
        with self._lock:
            for claimed in claims:
                self.running[claimed.key] = Held(claimed)
            self.assigned += len(claims)

    def free_places(self, places: int) -> int:
        with self._lock:
            return places - len(self.running)

    def idle_threads(self, concurrency: int) -> int:
        with self._lock:
            return max(0, concurrency - self.assigned)

    def taken(self, claimed: Claimed, waited: float) -> None:
        """A thread took ``claimed`` after it ``waited`` seconds for one."""
        with self._lock:
            self._longest_queue_wait = max(self._longest_queue_wait, waited)

    def longest_queue_wait(self) -> float:
        """The longest wait for a thread since the last call."""
        with self._lock:
            waited, self._longest_queue_wait = self._longest_queue_wait, 0.0
        return waited

    def started(self, claimed: Claimed, ctx: Context) -> None:
        with self._lock:
            held = self.running.get(claimed.key)
            if held is not None:
                held.ctx = ctx

    def ended(self, claimed: Claimed, outcome: Outcome | None) -> None:
        """An attempt ended; None when another worker owns the execution now."""
        with self._lock:
            self.assigned -= 1
            if outcome is None:
                self.running.pop(claimed.key, None)
            else:
                self.outcomes.append(outcome)

    def add_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        with self._lock:
            self.outcomes.extend(outcomes)

    def take_outcomes(self) -> list[Outcome]:
        with self._lock:
            batch, self.outcomes = self.outcomes, []
        return batch

    def put_back(self, outcomes: list[Outcome]) -> None:
        """Outcomes that could not be written, first in line for the next write."""
        with self._lock:
            self.outcomes[:0] = outcomes

    def settled(self, outcomes: list[Outcome]) -> None:
        """These outcomes are written (or their claims lost): the claims are let go."""
        with self._lock:
            for outcome in outcomes:
                self.running.pop((outcome.id, outcome.claims), None)
            self.processed += len(outcomes)

    def unreported(self) -> tuple[int, int]:
        """Claims whose outcome has not arrived, and outcomes waiting to be written."""
        with self._lock:
            return len(self.running) - len(self.outcomes), len(self.outcomes)

    def busy(self) -> bool:
        with self._lock:
            return bool(self.running) or bool(self.outcomes)

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self.running)

    def leases(self) -> dict[Key, Lease]:
        with self._lock:
            return {key: held.claimed.lease for key, held in self.running.items()}

    def request_cancel(self, execution_ids: Iterable[int]) -> None:
        """Pass a cancellation on to the handlers of these executions that have started."""
        wanted = set(execution_ids)
        with self._lock:
            for (execution_id, _claims), held in self.running.items():
                if execution_id in wanted and held.ctx is not None:
                    held.ctx.request_cancel()
