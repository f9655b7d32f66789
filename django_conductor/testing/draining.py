"""Running executions in the test's own thread with the worker's own parts: its claim, its
heartbeat, the attempt runner and the outcome writer. One attempt at a time, in claim order,
so that a test sees the same order on every run."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import connection
from django.db.models.functions import Now

from .. import api
from ..conf import settings
from ..exceptions import ConductorError
from ..handle import ExecutionHandle
from ..lease import Lease, elapsed
from ..models import ConcurrencyLimit, Execution
from ..registry import registry
from ..statuses import CLAIMABLE, Status
from ..step_writer import StepWriter
from ..store.base import server_cursor
from ..store.claims import claim_one
from ..worker.attempt import hand_back, run_attempt
from ..worker.base import Identity
from ..worker.batches import Batch, run_batch
from ..worker.claimed import Claimed, reread_child_steps
from ..worker.claiming import ClaimLoop
from ..worker.connections import raw_connection
from ..worker.duties import Heartbeat
from ..worker.holdings import Holdings, Job
from ..worker.process import forget_self, keep_limits, keep_schedules

#: The most attempts a drain runs unless told otherwise: a handler that keeps invoking
#: itself fails the test instead of hanging it.
DEFAULT_LIMIT = 100

_here = threading.local()


class DrainLimitExceeded(ConductorError):
    """``drain()`` ran as many attempts as its limit allows and executions were still ready."""


class NotRunnable(ConductorError):
    """``run_one()`` was given an execution that cannot run now."""


class Drained(list[Execution]):
    """The executions a drain ran, each once, in the order of their first attempt, as they
    stand after the drain; ``attempts`` counts every attempt it ran."""

    attempts: int = 0

    def statuses(self) -> dict[int, str]:
        return {execution.id: execution.status for execution in self}


def draining() -> bool:
    """Whether this thread is running attempts for a drain: eager mode leaves what a
    handler stores to that drain instead of starting another inside it."""
    return getattr(_here, "depth", 0) > 0


def drain(*, limit: int = DEFAULT_LIMIT, queues: Iterable[str] = ()) -> Drained:
    """Run every ready execution (of ``queues``, or all), and whatever becomes ready as they
    run (children, parents they wake, retries with no delay), until none is ready; what is
    not due yet (a sleep, a backoff, a delayed run) waits, as on a worker. Raises
    ``DrainLimitExceeded`` when executions are still ready after ``limit`` attempts."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"drain() needs a limit of at least 1 attempt, not {limit!r}")
    ran: list[int] = []
    with Session("drain()", queues) as session:
        while (job := session.claim_next()) is not None:
            members = job.members if isinstance(job, Batch) else (job,)
            if len(ran) >= limit:  # the claim is handed back, unused, as the session ends
                raise DrainLimitExceeded(
                    f"drain() ran {limit} attempts and executions are still ready, e.g. "
                    f"{members[0].id} ({members[0].task_name!r}): does a handler invoke work "
                    "in a loop? Pass a higher limit if this much work is expected."
                )
            session.run(job)
            ran.extend(claimed.id for claimed in members)
    return _drained(ran)


def run_one(execution: Execution | ExecutionHandle | int) -> Execution:
    """Run one attempt of this execution now, whatever else is ready; a pending one that
    waits out a delay or a retry backoff runs at once (as ``run_now`` makes it due). Raises
    ``NotRunnable``, running nothing, for one that is finished, running, or sleeping or
    waiting on something not due yet (``advance()`` makes it due). Returns it as it stands
    after the attempt."""
    execution_id = execution if isinstance(execution, int) else execution.id
    with Session("run_one()", ()) as session:
        claimed = session.claim(_runnable(execution_id))
        session.run(claimed)
    return Execution.objects.get(pk=execution_id)


class Session:
    """A worker of one thread, the caller's, for the span of one drain: registered, its
    leases renewed and its claims handed back at the end as a worker's are."""

    def __init__(self, call: str, queues: Iterable[str]) -> None:
        refuse_transaction(call)
        if isinstance(queues, str):
            raise TypeError(f"{call} takes a list of queue names, not the string {queues!r}")
        host = socket.gethostname()
        self.identity = Identity(
            worker_id=f"testing-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            host=host,
            queues=sorted(set(queues)),
            concurrency=1,
            task_names=sorted(task.name for task in registry),
        )
        self.holdings = Holdings()
        self.stopping = threading.Event()
        self.finished = threading.Event()
        self.loop = ClaimLoop(
            self.identity,
            self.holdings,
            prefetch=0,
            burst=True,
            stopping=self.stopping,
            wake=threading.Event(),
        )

    def __enter__(self) -> Session:
        keep_schedules(self.identity)
        keep_limits(self.identity)
        heartbeat = Heartbeat(self.identity, self.holdings, self.finished)
        heartbeat.beat()  # as a worker starts: dead workers' work re-queued, missed ticks made
        self.heartbeat = threading.Thread(
            target=heartbeat.run, name="conductor-testing-heartbeat", daemon=True
        )
        self.heartbeat.start()
        self.writer = StepWriter()
        _here.depth = getattr(_here, "depth", 0) + 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        _here.depth -= 1
        try:
            self.loop.outcomes.hand_back()
        finally:
            self.writer.close()
            self.finished.set()
            self.heartbeat.join(settings.HEARTBEAT_INTERVAL + 10)
            forget_self(self.identity)

    def claim_next(self) -> Job | None:
        if not self.loop.claim():
            return None
        return self.loop.jobs.get_nowait()

    def claim(self, execution_id: int) -> Claimed:
        sent_at = elapsed()
        conn = raw_connection()
        with server_cursor(conn) as cursor:
            row = claim_one(
                cursor, execution_id, worker=self.identity.worker_id, lease=settings.LEASE
            )
            if row is None:
                raise NotRunnable(f"Execution {execution_id} was taken by a worker meanwhile.")
            claimed = Claimed.from_row(row, Lease(sent_at, settings.LEASE))
            reread_child_steps(cursor, [claimed])
        self.holdings.add([claimed])
        return claimed

    def run(self, job: Job) -> None:
        """One attempt (of an execution, or of a batch), its outcomes written before the next
        claim. An error that is not the handler's to fail with (a test's own failure, ^C)
        gives the executions back unused and goes on up."""
        if isinstance(job, Claimed) and job.task_name in self.loop.batch_names:
            job = Batch((job,))  # run_one() of a batch task's execution: a batch of one
        try:
            if isinstance(job, Batch):
                outcomes = run_batch(
                    job, stopping=self.stopping, started=self.holdings.started_batch
                )
                self.holdings.ended_batch(outcomes)
            else:
                outcome = run_attempt(
                    job, stopping=self.stopping, writer=self.writer, started=self.holdings.started
                )
                self.holdings.ended(job, outcome)
        except BaseException as exc:
            if isinstance(job, Batch):
                self.holdings.ended_batch([hand_back(claimed, exc) for claimed in job.members])
            else:
                self.holdings.ended(job, hand_back(job, exc))
            self.loop.outcomes.flush()
            raise
        self.loop.outcomes.flush()


def refuse_transaction(call: str) -> None:
    if connection.in_atomic_block:
        raise ConductorError(
            f"{call} runs executions as the worker does, and every step it records commits "
            "on its own; it cannot run inside a transaction (an atomic block, a TestCase, or "
            "pytest-django's `db`). Use a transactional test: TransactionTestCase, "
            "`transactional_db`, or @pytest.mark.django_db(transaction=True)."
        )


def _runnable(execution_id: int) -> int:
    """The execution's id once it can run now, made due first if it waits out a delay or
    a backoff."""
    found = Execution.objects.filter(pk=execution_id).first()
    if found is None:
        raise NotRunnable(f"Execution {execution_id} does not exist.")
    if found.status not in CLAIMABLE:
        raise NotRunnable(
            f"Execution {execution_id} is {found.status}: only pending, sleeping and waiting "
            "executions can run."
        )
    due = Execution.objects.filter(pk=execution_id, run_at__lte=Now()).exists()
    if found.status == Status.PENDING and not due:
        api.run_now(execution_id)
    elif not due:
        until = "its child ends" if found.run_at is None else found.run_at.isoformat()
        raise NotRunnable(
            f"Execution {execution_id} is {found.status} until {until}: advance() the clock "
            "past it (or finish what it waits on) first."
        )
    _refuse_over_limit(found)
    return execution_id


def _refuse_over_limit(found: Execution) -> None:
    if found.concurrency_key is None:
        return
    limit = ConcurrencyLimit.objects.filter(task_name=found.task_name).first()
    running = Execution.objects.filter(
        task_name=found.task_name, concurrency_key=found.concurrency_key, status=Status.RUNNING
    ).count()
    if limit is not None and limit.concurrency is not None and running >= limit.concurrency:
        raise NotRunnable(
            f"Execution {found.id} would exceed its task's concurrency limit "
            f"({limit.concurrency}): {running} are running."
        )


def _drained(ids: list[int]) -> Drained:
    found: dict[Any, Execution] = Execution.objects.in_bulk(set(ids))
    drained = Drained(found[i] for i in dict.fromkeys(ids) if i in found)
    drained.attempts = len(ids)
    return drained
