"""The worker process: its lifecycle (start, graceful and hard stops), its threads
(execution slots, heartbeat, listener, claim loop) and what happens when one of them dies."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from django.apps import apps
from django.db import connection, transaction

from ..conf import settings
from ..exceptions import WorkerFailed
from ..registry import registry
from ..step_writer import StepWriter
from ..store.limits import Defined, put_limits
from ..store.workers import forget_worker, ready_elsewhere
from ..triggers.schedules import sync_static
from .attempt import hand_back, run_attempt
from .base import Identity, database_trouble, raw_cursor, wait_for_database
from .batches import Batch, run_batch
from .claiming import ClaimLoop
from .connections import DB_ERRORS
from .duties import Heartbeat
from .holdings import Holdings, Job
from .listener import listen
from .pruning import Pruner
from .signals import StopSignals

logger = logging.getLogger("django_conductor.worker")


class Worker:
    """One worker process. ``run()`` blocks until stopped (or drained, with ``burst``)."""

    def __init__(
        self,
        *,
        queues: Iterable[str] = (),
        concurrency: int | None = None,
        worker_id: str | None = None,
        burst: bool = False,
        prefetch: int | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        host = socket.gethostname()
        self.identity = Identity(
            worker_id=worker_id or f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
            host=host,
            queues=sorted(set(queues)),
            concurrency=concurrency or settings.CONCURRENCY,
            task_names=sorted(task.name for task in registry),
        )
        self.install_signal_handlers = install_signal_handlers
        self.stopping = threading.Event()
        self.stopped_hard = threading.Event()
        self.wake = threading.Event()
        #: Set once everything is handed back: the heartbeat renews leases until then.
        self.finished = threading.Event()
        self.holdings = Holdings()
        self.claiming = ClaimLoop(
            self.identity,
            self.holdings,
            prefetch=settings.PREFETCH if prefetch is None else prefetch,
            burst=burst,
            stopping=self.stopping,
            wake=self.wake,
        )
        self.heartbeat = Heartbeat(self.identity, self.holdings, self.finished)
        self.failure: BaseException | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self._signals = StopSignals(self.stop, self.stopping)

    @property
    def worker_id(self) -> str:
        return self.identity.worker_id

    @property
    def concurrency(self) -> int:
        return self.identity.concurrency

    def run(self) -> None:
        """Raises ``TablesMissing`` before doing anything when ``migrate`` has not run, and
        ``WorkerFailed`` when one of its duties died."""
        if self.install_signal_handlers:
            self._signals.install()
        try:
            self._run()
        finally:
            if self.install_signal_handlers:
                self._signals.restore()
        if self.failure is not None:
            raise WorkerFailed(f"Worker {self.worker_id} stopped: {self.failure}") from self.failure

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming; with ``now``, hand running executions back at once."""
        if now:
            self.stopped_hard.set()
        self.stopping.set()
        self.wake.set()

    def _run(self) -> None:
        if not wait_for_database(self.identity, self.stopping):
            return  # stopped before the database came back
        logger.info(
            "Worker %s starting: queues=%s concurrency=%d",
            self.worker_id,
            self.identity.queues or "all",
            self.concurrency,
            extra={"action": "worker_start", "worker_id": self.worker_id},
        )
        announce_tasks(self.identity)
        keep_schedules(self.identity)
        keep_limits(self.identity)
        self.step_writer = StepWriter()
        try:
            self._start_threads()
            try:
                self.heartbeat.beat()  # register, and re-queue dead workers', before claiming
            except DB_ERRORS as exc:
                database_trouble(self.identity, exc, 0.5, self.stopping)
            self.claiming.run()
            self.claiming.outcomes.drain(self.stopped_hard, self.wake, self.stopping)
        finally:
            self.stopping.set()
            self.claiming.outcomes.hand_back()
            self.step_writer.close()
            self.finished.set()
            if self._heartbeat_thread is not None:
                self._heartbeat_thread.join(settings.HEARTBEAT_INTERVAL + 10)
            forget_self(self.identity)
            for _ in range(self.concurrency):
                self.claiming.jobs.put(None)
            connection.close()
            logger.info(
                "Worker %s stopped after %d executions",
                self.worker_id,
                self.holdings.processed,
                extra={"action": "worker_stop", "worker_id": self.worker_id},
            )

    # -- threads -----------------------------------------------------------------------

    def _start_threads(self) -> None:
        def listener() -> None:
            c = self.claiming
            listen(self.identity, self.holdings, self.wake, self.stopping, c.ready, c.new_work)

        def slot() -> None:
            run_slot(self.claiming.jobs, self.holdings, self.step_writer, self.stopping, self.wake)

        duties: list[tuple[str, Callable[[], None]]] = [("slot", slot)] * self.concurrency
        duties += [("heartbeat", self.heartbeat.run), ("listener", listener)]
        duties += [("pruner", Pruner(self.identity, self.stopping).run)]
        for index, (name, target) in enumerate(duties):
            thread = threading.Thread(
                target=self._duty(name, target), name=f"conductor-{name}-{index}", daemon=True
            )
            thread.start()
            if name == "heartbeat":
                self._heartbeat_thread = thread

    def _duty(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        """A duty thread that dies of an unexpected error stops the worker loudly, rather
        than leaving it claiming work that nobody renews, writes or hears about."""

        def run() -> None:
            try:
                target()
            except BaseException as exc:
                logger.exception("The worker's _%s died; stopping the worker", name)
                self.failure = exc
                self.stop(now=True)

        return run


def run_slot(
    jobs: queue.SimpleQueue[Job | None],
    holdings: Holdings,
    writer: StepWriter,
    stopping: threading.Event,
    wake: threading.Event,
) -> None:
    """An execution thread: run the attempts of the jobs it takes, one at a time, until it
    takes None."""
    while True:
        job = jobs.get()
        if job is None:
            break
        holdings.taken(time.monotonic() - job.claimed_at)
        if isinstance(job, Batch):
            try:
                outcomes = run_batch(job, stopping=stopping, started=holdings.started_batch)
            except BaseException as exc:  # never lose a slot, never leave them "running"
                logger.exception("Unexpected error running a batch of %s", job.members[0].task_name)
                outcomes = [hand_back(claimed, exc) for claimed in job.members]
            holdings.ended_batch(outcomes)
        else:
            try:
                outcome = run_attempt(
                    job, stopping=stopping, writer=writer, started=holdings.started
                )
            except BaseException as exc:  # never lose a slot, never leave it "running"
                logger.exception("Unexpected error running execution %s", job.id)
                outcome = hand_back(job, exc)
            holdings.ended(job, outcome)
        wake.set()
    connection.close()


def keep_schedules(identity: Identity) -> None:
    """Make the stored static schedules those the code defines, once at start."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            refused = sync_static(cursor, registry)
    except DB_ERRORS as exc:  # the next start tries again; ticks already stored still run
        logger.warning("Could not bring the cron schedules up to date (%s)", exc)
        return
    for reason in refused:
        logger.warning(
            "Cron schedule left out: %s",
            reason,
            extra={"action": "schedule_refused", "worker_id": identity.worker_id},
        )


def keep_limits(identity: Identity) -> None:
    """Make the stored concurrency limits of this worker's tasks those its code defines,
    once at start: the other workers claim by them from their next claim on."""
    defined = [Defined(task.name, task.concurrency, task.limit_key) for task in registry]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            changed = put_limits(cursor, defined)
    except DB_ERRORS as exc:  # the limits stored stay in force until the next start
        logger.warning("Could not bring the concurrency limits up to date (%s)", exc)
        return
    for task in changed:
        logger.info(
            "Concurrency limit of %s changed; its unfinished executions were keyed anew",
            task.task_name,
            extra={"action": "limit_changed", "worker_id": identity.worker_id},
        )


def forget_self(identity: Identity) -> None:
    """Remove this worker's heartbeat row as it stops: the admin lists it no longer."""
    try:
        with raw_cursor() as cursor:
            forget_worker(cursor, identity.worker_id)
    except DB_ERRORS:
        pass


def announce_tasks(identity: Identity) -> None:
    """Say which tasks this process can run, warn loudly when it can run none, and say
    which ready executions it leaves to workers that have their tasks."""
    tasks = sorted(registry, key=lambda task: task.name)
    if tasks:
        logger.info(
            "Tasks: %s",
            ", ".join(f"{task.name} [{task.queue}]" for task in tasks),
            extra={"action": "worker_tasks", "worker_id": identity.worker_id},
        )
        _announce_tasks_elsewhere(identity)
        return
    apps_searched = [
        app.name for app in apps.get_app_configs() if not app.name.startswith("django.")
    ]
    logger.warning(
        "No tasks are registered, so this worker can run nothing. It imported the "
        "'tasks' module of every installed app (%s) and found no @task there: define "
        "tasks in <app>/tasks.py, or import their module from it.",
        ", ".join(apps_searched) or "none installed",
        extra={"action": "worker_no_tasks", "worker_id": identity.worker_id},
    )


def _announce_tasks_elsewhere(identity: Identity) -> None:
    with raw_cursor() as cursor:
        waiting = ready_elsewhere(cursor, identity.task_names)
    if waiting:
        logger.warning(
            "Leaving ready executions of tasks this worker does not have to workers that "
            "have them (is a deploy under way?): %s",
            ", ".join(f"{ready.task_name} ({ready.ready})" for ready in waiting),
            extra={"action": "worker_lacks_tasks", "worker_id": identity.worker_id},
        )
