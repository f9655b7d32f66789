"""What one worker process holds: its claims, the outcomes waiting to be written, and how
busy its threads are. The execution threads, the claim loop and the heartbeat all change it,
so it lives behind one lock, and only here."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from ..batch_context import BatchContext
from ..context import Context
from ..lease import Lease
from .batches import Batch
from .claimed import Claimed, Outcome

Key = tuple[int, int]
#: What a thread runs: one claim, or a batch of claims of one batch task.
Job = Claimed | Batch


class Place:
    """A batch's one place in the buffer, held until the last of its claims is let go."""

    def __init__(self, members: int) -> None:
        self.members = members


@dataclass
class Held:
    """A claim this process holds; ``cancel`` once its attempt has started; ``place`` when
    it is one of a batch, which shares one place."""

    claimed: Claimed
    cancel: Callable[[], None] | None = None
    place: Place | None = None


class Holdings:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Every claim this process holds, by (execution id, claims): a re-claim of an
        #: execution this process had lost is another entry, renewed and ended on its own.
        self.running: dict[Key, Held] = {}
        #: Outcomes of ended attempts, not written yet.
        self.outcomes: list[Outcome] = []
        #: Jobs handed to the threads whose attempt has not ended yet.
        self.assigned = 0
        #: Places in the buffer taken: a claim each, a batch one for all its claims.
        self.places = 0
        #: Executions whose outcome this process wrote.
        self.processed = 0
        self._longest_queue_wait = 0.0

    def add(self, jobs: list[Job]) -> None:
        """Claims just made, all handed to the threads."""
        with self._lock:
            for job in jobs:
                if isinstance(job, Batch):
                    place = Place(len(job.members))
                    for claimed in job.members:
                        self.running[claimed.key] = Held(claimed, place=place)
                else:
                    self.running[job.key] = Held(job)
            self.assigned += len(jobs)
            self.places += len(jobs)

    def free_places(self, places: int) -> int:
        with self._lock:
            return places - self.places

    def idle_threads(self, concurrency: int) -> int:
        with self._lock:
            return max(0, concurrency - self.assigned)

    def taken(self, waited: float) -> None:
        """A thread took a job after it ``waited`` seconds for one."""
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
                held.cancel = ctx.request_cancel

    def started_batch(self, members: list[Claimed], ctx: BatchContext) -> None:
        with self._lock:
            for claimed in members:
                held = self.running.get(claimed.key)
                if held is not None:
                    held.cancel = partial(ctx.request_cancel, claimed.id)

    def ended(self, claimed: Claimed, outcome: Outcome | None) -> None:
        """An attempt ended; None when another worker owns the execution now."""
        with self._lock:
            self.assigned -= 1
            if outcome is None:
                self._let_go(claimed.key)
            else:
                self.outcomes.append(outcome)

    def ended_batch(self, outcomes: list[Outcome]) -> None:
        """A batch's attempt ended, with an outcome for each of its claims."""
        with self._lock:
            self.assigned -= 1
            self.outcomes.extend(outcomes)

    def _let_go(self, key: Key) -> None:
        held = self.running.pop(key, None)
        if held is None:
            return
        if held.place is not None:
            held.place.members -= 1
            if held.place.members:
                return
        self.places -= 1

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
                self._let_go((outcome.id, outcome.claims))
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
                if execution_id in wanted and held.cancel is not None:
                    held.cancel()
