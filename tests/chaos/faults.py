"""The faults, drawn from a seeded RNG: every kind once per round in a shuffled order, at
random intervals, on a random healthy worker. Each injected fault is kept with its times
(the wall clock, which the database on this host shares) for the checks to explain re-runs."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from .cluster import Cluster
from .workers import Incarnation, WorkerPool

SIGKILL = "SIGKILL"
SIGSTOP = "SIGSTOP"
SIGTERM = "SIGTERM"
RESTART_FAST = "pg_ctl restart -m fast"
RESTART_IMMEDIATE = "pg_ctl restart -m immediate"
TERMINATE = "pg_terminate_backend"
KINDS = (SIGKILL, SIGSTOP, SIGTERM, RESTART_FAST, RESTART_IMMEDIATE, TERMINATE)
#: Short names for ``--faults``.
NAMES = {
    "sigkill": SIGKILL,
    "sigstop": SIGSTOP,
    "sigterm": SIGTERM,
    "restart-fast": RESTART_FAST,
    "restart-immediate": RESTART_IMMEDIATE,
    "terminate": TERMINATE,
}
#: Faults that hit one worker process; the others hit the database.
WORKER_KINDS = (SIGKILL, SIGSTOP, SIGTERM)


@dataclass
class Fault:
    kind: str
    at: float
    until: float | None = None
    worker_id: str | None = None
    pid: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "at": self.at,
            "until": self.until,
            "worker_id": self.worker_id,
            "pid": self.pid,
            **self.detail,
        }


class Injector:
    def __init__(
        self,
        *,
        rng: random.Random,
        pool: WorkerPool,
        cluster: Cluster,
        lease: float,
        grace: float,
        interval: tuple[float, float],
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.kinds = kinds
        self.rng = rng
        self.pool = pool
        self.cluster = cluster
        self.lease = lease
        self.grace = grace
        self.interval = interval
        self.faults: list[Fault] = []
        self.notes: list[str] = []
        self._deck: list[str] = []
        self._next_at = time.monotonic() + rng.uniform(*interval)
        self._resume_at: dict[int, tuple[float, Fault]] = {}
        self._term_deadline: dict[int, float] = {}

    # -- the schedule ------------------------------------------------------------------

    def due(self) -> bool:
        return time.monotonic() >= self._next_at

    def inject_next(self) -> Fault | None:
        if not self._deck:
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        kind = self._deck.pop()
        self._next_at = time.monotonic() + self.rng.uniform(*self.interval)
        if kind in WORKER_KINDS or kind == TERMINATE:
            targets = sorted(self.pool.healthy(), key=lambda inc: inc.slot)
            if not targets:
                self.notes.append(f"{kind} skipped: no healthy worker to hit")
                return None
            target = self.rng.choice(targets)
            return {
                SIGKILL: self._kill,
                SIGSTOP: self._stop,
                SIGTERM: self._term,
                TERMINATE: self._terminate,
            }[kind](target)
        return self._restart("fast" if kind == RESTART_FAST else "immediate", kind)

    # -- worker faults -----------------------------------------------------------------

    def _record(self, kind: str, inc: Incarnation | None, **detail: Any) -> Fault:
        fault = Fault(
            kind,
            time.time(),
            worker_id=inc.worker_id if inc else None,
            pid=inc.pid if inc else None,
            detail=detail,
        )
        self.faults.append(fault)
        return fault

    def _kill(self, inc: Incarnation) -> Fault:
        fault = self._record(SIGKILL, inc)
        inc.fate, inc.fate_at = "kill", fault.at
        self.pool.send(inc, signal.SIGKILL)
        return fault

    def _stop(self, inc: Incarnation) -> Fault:
        pause = self.rng.uniform(1.5, 2.5) * self.lease
        fault = self._record(SIGSTOP, inc, planned_pause=round(pause, 3))
        inc.stopped = True
        self.pool.send(inc, signal.SIGSTOP)
        self._resume_at[inc.pid] = (time.monotonic() + pause, fault)
        return fault

    def _term(self, inc: Incarnation) -> Fault:
        fault = self._record(SIGTERM, inc)
        inc.fate, inc.fate_at = "term", fault.at
        self.pool.send(inc, signal.SIGTERM)
        self._term_deadline[inc.pid] = time.monotonic() + self.grace + 30
        return fault

    def _terminate(self, inc: Incarnation) -> Fault:
        fault = self._record(TERMINATE, inc)
        try:
            with self.cluster.connect(timeout=10) as conn:
                (count,) = conn.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    [inc.worker_id],
                ).fetchone()
            fault.detail["connections"] = count
        except psycopg.Error as exc:
            fault.detail["error"] = str(exc)
        fault.until = time.time()
        return fault

    def _restart(self, mode: str, kind: str) -> Fault:
        fault = self._record(kind, None)
        fault.detail["seconds"] = round(self.cluster.restart(mode), 3)
        fault.until = time.time()
        return fault

    # -- looking after the workers -----------------------------------------------------

    def supervise(self) -> None:
        """Resume paused workers when due, restart the ones that exited, and kill a stopping
        worker that outlived its grace by far (the checks report it)."""
        now = time.monotonic()
        for pid, (when, fault) in list(self._resume_at.items()):
            if now >= when:
                inc = self.pool.by_pid()[pid]
                self.pool.send(inc, signal.SIGCONT)
                inc.stopped = False
                fault.until = time.time()
                del self._resume_at[pid]
        for pid, deadline in list(self._term_deadline.items()):
            inc = self.pool.by_pid()[pid]
            if inc.poll() is not None:
                del self._term_deadline[pid]
            elif now >= deadline:
                inc.fate = "term-timeout"
                self.pool.send(inc, signal.SIGKILL)
                del self._term_deadline[pid]
        for slot, inc in list(self.pool.current.items()):
            if inc.poll() is not None:
                self.pool.start(slot)

    def resume_all(self) -> None:
        self._resume_at = {pid: (0.0, fault) for pid, (_, fault) in self._resume_at.items()}
        self.supervise()

    def settled(self) -> bool:
        """No worker paused or still stopping."""
        return not self._resume_at and not self._term_deadline
