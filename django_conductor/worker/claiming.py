"""The claim loop, the worker's main thread: write the outcomes that came in, claim ready
executions in batches for the threads, and, with nothing to do, sleep until the next is due
or a notification says there is more."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import psycopg

from ..conf import settings
from ..lease import Lease, elapsed
from ..registry import registry
from ..store.base import server_cursor
from ..store.batch_claims import Batched, batch_due, claim_batched
from ..store.claims import claim, next_due
from .base import Identity, database_trouble, next_backoff, raw_cursor
from .batches import Batch
from .claimed import Claimed, reread_child_steps
from .connections import DB_ERRORS, raw_connection
from .holdings import Holdings, Job
from .outcomes import OutcomeWriter

#: A claimed execution that waits longer than this for a thread halves the prefetch.
PREFETCH_MAX_WAIT = 0.05
#: How long the loop may hold finished outcomes back to write them together (seconds).
BATCH_WINDOW = 0.002
#: The shortest sleep while a due batch could not be claimed (another worker holds its
#: executions for a moment): no busy loop.
BATCH_RETRY = 0.01


class ClaimLoop:
    def __init__(
        self,
        identity: Identity,
        holdings: Holdings,
        *,
        prefetch: int,
        burst: bool,
        stopping: threading.Event,
        wake: threading.Event,
    ) -> None:
        self.identity = identity
        self.holdings = holdings
        self.outcomes = OutcomeWriter(identity, holdings)
        self.max_prefetch = prefetch
        self.prefetch = min(identity.concurrency, prefetch)
        self.last_claim_full = False
        self.burst = burst
        self.stopping = stopping
        self.wake = wake
        #: Jobs for the execution threads, in claim order; None tells a thread to stop.
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        #: This worker's batch tasks, claimed a batch at a time, in turn.
        self.batched = [
            Batched(task.name, task.batch_size, task.batch_wait)
            for task in sorted(registry, key=lambda task: task.name)
            if task.batch_size is not None
        ]
        self.batch_names = {batched.task_name for batched in self.batched}
        self.batch_turn = 0
        #: When to look for batches next (monotonic): at once after a claimed batch or news
        #: of new work, else when the first waiting batch is due.
        self.batches_due_at = float("-inf")
        #: Set by the listener on news of ready work: while a thread is free, it ends the
        #: wait for outcomes to write together, so that a pickup waits for no other work.
        self.ready = threading.Event()
        #: Set by the listener on news of new work that may fill a batch.
        self.new_work = threading.Event()

    def run(self) -> None:
        backoff = 0.0
        while not self.stopping.is_set():
            self.wake.clear()
            self.ready.clear()
            self.gather_outcomes()
            try:
                self.outcomes.flush()
                claimed = self.claim()
                backoff = 0.0
            except DB_ERRORS as exc:
                backoff = next_backoff(backoff)
                database_trouble(self.identity, exc, backoff, self.stopping)
                continue
            if claimed:
                continue  # there may be more ready work: claim again at once
            busy = self.holdings.busy()
            if self.burst and not busy:
                return
            # Busy: a finishing execution wakes the loop. Idle: sleep until the next is due.
            wait = settings.POLL_INTERVAL if busy else self.idle_wait()
            self.wake.wait(min(wait, self.batch_wait()))

    def gather_outcomes(self) -> None:
        """Give executions still running a moment to finish, so that their outcomes share
        one write: a few milliseconds of latency buy far fewer commits under load. News of
        ready work ends the wait while a thread is free to run it: the claim goes first."""
        concurrency = self.identity.concurrency
        deadline = time.monotonic() + BATCH_WINDOW
        while True:
            waiting_for, gathered = self.holdings.unreported()
            enough = gathered >= concurrency
            remaining = deadline - time.monotonic()
            done = not gathered or waiting_for <= 0 or enough or remaining <= 0
            if done or (self.ready.is_set() and self.holdings.idle_threads(concurrency)):
                return
            self.wake.wait(remaining)
            self.wake.clear()

    def idle_wait(self) -> float:
        """Until the next due execution, or the poll interval, whichever is sooner."""
        try:
            with raw_cursor() as cursor:
                due = next_due(
                    cursor, queues=self.identity.queues, tasks=self.identity.tasks_literal
                )
        except DB_ERRORS:
            return settings.POLL_INTERVAL  # the next loop turn deals with the database
        if due is None:
            return settings.POLL_INTERVAL
        return max(0.0, min(due, settings.POLL_INTERVAL))

    def batch_wait(self) -> float:
        """Until batches are looked for next, when a thread is free to run one (a busy
        thread's end wakes the loop anyway)."""
        if not self.batched or not self.holdings.idle_threads(self.identity.concurrency):
            return settings.POLL_INTERVAL
        return max(0.0, self.batches_due_at - time.monotonic())

    def next_batch_in(self, cursor: psycopg.Cursor[Any]) -> float:
        """Seconds until a batch is due, at least ``BATCH_RETRY``, at most the poll interval."""
        due = batch_due(cursor, self.batched, queues=self.identity.queues)
        if due is None:
            return settings.POLL_INTERVAL
        return max(BATCH_RETRY, min(due, settings.POLL_INTERVAL))

    def claim(self) -> int:
        """Claim a batch once at least ``prefetch`` places in the local buffer (threads plus
        prefetch) are free, so each claim is a real batch and threads stay fed."""
        concurrency = self.identity.concurrency
        if self.holdings.free_places(concurrency + self.prefetch) < max(1, self.prefetch):
            return 0
        self._tune_prefetch()
        free = self.holdings.free_places(concurrency + self.prefetch)
        if free <= 0:
            return 0
        lease = settings.LEASE
        sent_at = elapsed()
        idle = self.holdings.idle_threads(concurrency)
        conn = raw_connection()
        jobs: list[Job] = self.claim_batches(idle, sent_at, lease) if idle and self.batched else []
        if free == len(jobs):
            return self.hand_out(jobs, free)
        with server_cursor(conn) as cursor:
            rows = claim(
                cursor,
                places=free - len(jobs),
                # These begin their attempt now; the rest when a thread takes them.
                idle=max(0, idle - len(jobs)),
                worker=self.identity.worker_id,
                lease=lease,
                queues=self.identity.queues,
                tasks=self.identity.tasks_literal,
            )
            claims = [Claimed.from_row(row, Lease(sent_at, lease)) for row in rows]
            reread_child_steps(cursor, claims)
        # A batch task's execution created before its task was one (in a deploy) is claimed
        # with the rest: it runs as a batch of one.
        jobs += [Batch((c,)) if c.task_name in self.batch_names else c for c in claims]
        return self.hand_out(jobs, free)

    def hand_out(self, jobs: list[Job], free: int) -> int:
        """Queue claimed ``jobs`` for the threads; ``free`` places were asked for."""
        self.last_claim_full = len(jobs) == free
        self.holdings.add(jobs)
        for job in jobs:
            self.jobs.put(job)
        return len(jobs)

    def claim_batches(self, idle: int, sent_at: float, lease: float) -> list[Job]:
        """Batches of the batch tasks that have some due, one for each of up to ``idle``
        threads; the tasks take turns at going first, so that one with a deep backlog starves
        none. Looked for only when one may be due, so that batch tasks cost the other claims
        nothing."""
        now = time.monotonic()
        if self.new_work.is_set():
            self.new_work.clear()
        elif now < self.batches_due_at:
            return []
        turn, self.batch_turn = self.batch_turn, (self.batch_turn + 1) % len(self.batched)
        batches: list[Job] = []
        with server_cursor(raw_connection()) as cursor:
            for batched in self.batched[turn:] + self.batched[:turn]:
                if len(batches) >= idle:
                    break
                rows = claim_batched(
                    cursor,
                    task=batched.task_name,
                    size=batched.size,
                    wait=batched.wait,
                    batches=idle - len(batches),
                    worker=self.identity.worker_id,
                    lease=lease,
                    queues=self.identity.queues,
                )
                claims = [Claimed.from_row(row, Lease(sent_at, lease)) for row in rows]
                for start in range(0, len(claims), batched.size):
                    batches.append(Batch(tuple(claims[start : start + batched.size])))
            self.batches_due_at = now if batches else now + self.next_batch_in(cursor)
        return batches

    def _tune_prefetch(self) -> None:
        """Claim further ahead while threads drain every batch at once (short executions);
        claim less once claimed executions wait for a thread (long ones), so that they are
        not held here while another worker has free threads."""
        if self.holdings.longest_queue_wait() > PREFETCH_MAX_WAIT:
            self.prefetch //= 2
        elif self.last_claim_full and self.jobs.empty():
            self.prefetch = min(self.max_prefetch, max(1, self.prefetch * 2))
