"""The worker: claims ready executions in batches, runs them on threads, writes their
outcomes in batches, keeps their leases alive, and re-queues the work of dead workers."""

from __future__ import annotations

import logging
import os
import queue as queue_module
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from django.apps import apps
from django.db import connection

from . import payloads, sql
from .attempt import (
    DB_ERRORS,
    Claimed,
    Outcome,
    hand_back,
    raw_connection,
    reread_child_steps,
    run_attempt,
)
from .attempt_starter import AttemptStarter
from .conf import settings
from .context import Context
from .exceptions import WorkerFailed
from .lease import Lease, elapsed
from .notify import connect_listener, ids_of
from .registry import registry
from .schema import check_tables
from .step_writer import StepWriter
from .transitions import after_status_changes

logger = logging.getLogger("django_conductor.worker")

MAX_BACKOFF = 30.0
#: A claimed execution that waits longer than this for a thread halves the prefetch.
PREFETCH_MAX_WAIT = 0.05
#: How long the loop may hold finished outcomes back to write them together (seconds).
BATCH_WINDOW = 0.002


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
        self.queues = sorted(set(queues))
        self.concurrency = concurrency or settings.CONCURRENCY
        self.max_prefetch = settings.PREFETCH if prefetch is None else prefetch
        self.prefetch = min(self.concurrency, self.max_prefetch)
        self.longest_queue_wait = 0.0
        self.last_claim_full = False
        host = socket.gethostname()
        self.host = host
        self.worker_id = worker_id or f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.burst = burst
        self.install_signal_handlers = install_signal_handlers
        self.stopping = threading.Event()
        self.stopped_hard = threading.Event()
        self.wake = threading.Event()
        self.jobs: queue_module.SimpleQueue[Claimed | None] = queue_module.SimpleQueue()
        self.lock = threading.Lock()
        #: Every claim this process holds, by (execution id, claims): a re-claim of an
        #: execution this process had lost is another entry, renewed and ended on its own.
        self.running: dict[tuple[int, int], Held] = {}
        #: Claims handed to the threads whose attempt has not ended yet.
        self.assigned = 0
        #: Set once everything is handed back: the heartbeat renews leases until then.
        self.finished = threading.Event()
        self.failure: BaseException | None = None
        self._heartbeat_thread: threading.Thread | None = None
        #: The tasks this process can run; it claims executions of these only.
        self.task_names: list[str] = sorted(task.name for task in registry)
        #: The same as one PostgreSQL array literal, sent with every claim as one value.
        self.tasks_literal = _text_array(self.task_names)
        self.outcomes: list[Outcome] = []
        self.processed = 0
        self._threads: list[threading.Thread] = []
        self._previous_handlers: dict[int, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def run(self) -> None:
        """Raises ``TablesMissing`` before doing anything when ``migrate`` has not run, and
        ``WorkerFailed`` when one of its duties died."""
        if self.install_signal_handlers:
            self._install_signal_handlers()
        try:
            self._run()
        finally:
            if self.install_signal_handlers:
                self._restore_signal_handlers()
        if self.failure is not None:
            raise WorkerFailed(f"Worker {self.worker_id} stopped: {self.failure}") from self.failure

    def _run(self) -> None:
        if not self._wait_for_database():
            return  # stopped before the database came back
        logger.info(
            "Worker %s starting: queues=%s concurrency=%d",
            self.worker_id,
            self.queues or "all",
            self.concurrency,
            extra={"action": "worker_start", "worker_id": self.worker_id},
        )
        self._announce_tasks()
        self.step_writer = StepWriter()
        self.attempt_starter = AttemptStarter()
        try:
            self._start_threads()
            try:
                self._beat()  # register, and re-queue dead workers' executions, before claiming
            except DB_ERRORS as exc:
                self._database_trouble(exc, 0.5)
            self._loop()
            self._drain()
        finally:
            self.stopping.set()
            self._hand_back()
            self.step_writer.close()
            self.attempt_starter.close()
            self.finished.set()
            if self._heartbeat_thread is not None:
                self._heartbeat_thread.join(settings.HEARTBEAT_INTERVAL + 10)
            self._forget_self()
            for _ in range(self.concurrency):
                self.jobs.put(None)
            connection.close()
            logger.info(
                "Worker %s stopped after %d executions",
                self.worker_id,
                self.processed,
                extra={"action": "worker_stop", "worker_id": self.worker_id},
            )

    def _wait_for_database(self) -> bool:
        """Check the tables, waiting out a database that is not up yet (until stopped);
        False when the worker was stopped meanwhile."""
        backoff = 0.0
        while not self.stopping.is_set():
            try:
                check_tables()
                return True
            except DB_ERRORS as exc:
                backoff = _next_backoff(backoff)
                self._database_trouble(exc, backoff)
        return False

    def _announce_tasks(self) -> None:
        """Say which tasks this process can run, warn loudly when it can run none, and say
        which ready executions it leaves to workers that have their tasks."""
        tasks = sorted(registry, key=lambda task: task.name)
        if tasks:
            logger.info(
                "Tasks: %s",
                ", ".join(f"{task.name} [{task.queue}]" for task in tasks),
                extra={"action": "worker_tasks", "worker_id": self.worker_id},
            )
            self._announce_tasks_elsewhere()
            return
        apps_searched = [
            app.name for app in apps.get_app_configs() if not app.name.startswith("django.")
        ]
        logger.warning(
            "No tasks are registered, so this worker can run nothing. It imported the "
            "'tasks' module of every installed app (%s) and found no @task there: define "
            "tasks in <app>/tasks.py, or import their module from it.",
            ", ".join(apps_searched) or "none installed",
            extra={"action": "worker_no_tasks", "worker_id": self.worker_id},
        )

    def _announce_tasks_elsewhere(self) -> None:
        with _raw_cursor() as cursor:
            cursor.execute(sql.READY_ELSEWHERE, {"tasks": self.task_names})
            waiting = cursor.fetchall()
        if waiting:
            logger.warning(
                "Leaving ready executions of tasks this worker does not have to workers that "
                "have them (is a deploy under way?): %s",
                ", ".join(f"{name} ({count})" for name, count in waiting),
                extra={"action": "worker_lacks_tasks", "worker_id": self.worker_id},
            )

    def stop(self, *, now: bool = False) -> None:
        """Stop claiming; with ``now``, hand running executions back at once."""
        if now:
            self.stopped_hard.set()
        self.stopping.set()
        self.wake.set()

    def _install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.stopping.is_set():
            logger.warning("Got %s again: handing everything back and exiting now", name)
            self.stop(now=True)
        else:
            logger.info(
                "Got %s: finishing running executions (grace %.0fs); send it again to exit now",
                name,
                settings.SHUTDOWN_GRACE,
            )
            self.stop()

    def _start_threads(self) -> None:
        targets = [self._slot] * self.concurrency + [self._heartbeat, self._listen]
        for index, target in enumerate(targets):
            thread = threading.Thread(
                target=self._duty(target),
                name=f"conductor-{target.__name__.strip('_')}-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        self._heartbeat_thread = self._threads[self.concurrency]

    def _duty(self, target: Any) -> Any:
        """A duty thread that dies of an unexpected error stops the worker loudly, rather
        than leaving it claiming work that nobody renews, writes or hears about."""

        def run() -> None:
            try:
                target()
            except BaseException as exc:
                logger.exception("The worker's %s died; stopping the worker", target.__name__)
                self.failure = exc
                self.stop(now=True)

        return run

    # -- the main loop -----------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.0
        while not self.stopping.is_set():
            self.wake.clear()
            self._gather_outcomes()
            try:
                self._flush()
                claimed = self._claim()
                backoff = 0.0
            except DB_ERRORS as exc:
                backoff = _next_backoff(backoff)
                self._database_trouble(exc, backoff)
                continue
            if claimed:
                continue  # there may be more ready work: claim again at once
            with self.lock:
                busy = bool(self.running) or bool(self.outcomes)
            if self.burst and not busy:
                return
            # Busy: a finishing execution wakes the loop. Idle: sleep until the next is due.
            self.wake.wait(settings.POLL_INTERVAL if busy else self._idle_wait())

    def _gather_outcomes(self) -> None:
        """Give executions still running a moment to finish, so that their outcomes share
        one write: a few milliseconds of latency buy far fewer commits under load."""
        deadline = time.monotonic() + BATCH_WINDOW
        while True:
            with self.lock:
                waiting_for = len(self.running) - len(self.outcomes)
                enough = len(self.outcomes) >= self.concurrency
            remaining = deadline - time.monotonic()
            if not self.outcomes or waiting_for <= 0 or enough or remaining <= 0:
                return
            self.wake.wait(remaining)
            self.wake.clear()

    def _database_trouble(self, exc: BaseException, backoff: float) -> None:
        logger.warning(
            "Database unavailable (%s); retrying in %.1fs",
            exc,
            backoff,
            extra={"action": "database_error", "worker_id": self.worker_id},
        )
        connection.close()
        self.stopping.wait(backoff)

    def _idle_wait(self) -> float:
        """Until the next due execution, or the poll interval, whichever is sooner."""
        statement = sql.NEXT_DUE_QUEUES if self.queues else sql.NEXT_DUE_ANY_QUEUE
        try:
            with _raw_cursor() as cursor:
                params = {"queues": self.queues, "tasks": self.tasks_literal}
                cursor.execute(statement, params, prepare=True)
                (due,) = cursor.fetchone() or (None,)
        except DB_ERRORS:
            return settings.POLL_INTERVAL  # the next loop turn deals with the database
        if due is None:
            return settings.POLL_INTERVAL
        return max(0.0, min(float(due), settings.POLL_INTERVAL))

    def _tune_prefetch(self) -> None:
        """Claim further ahead while threads drain every batch at once (short executions);
        claim less once claimed executions wait for a thread (long ones), so that they are
        not held here while another worker has free threads."""
        with self.lock:
            waited, self.longest_queue_wait = self.longest_queue_wait, 0.0
        if waited > PREFETCH_MAX_WAIT:
            self.prefetch //= 2
        elif self.last_claim_full and self.jobs.empty():
            self.prefetch = min(self.max_prefetch, max(1, self.prefetch * 2))

    def _claim(self) -> int:
        """Claim a batch once at least ``prefetch`` places in the local buffer (threads plus
        prefetch) are free, so each claim is a real batch and threads stay fed."""
        with self.lock:
            free = self.concurrency + self.prefetch - len(self.running)
        if free < max(1, self.prefetch):
            return 0
        self._tune_prefetch()
        with self.lock:
            free = self.concurrency + self.prefetch - len(self.running)
        if free <= 0:
            return 0
        lease = settings.LEASE
        with self.lock:
            idle = max(0, self.concurrency - self.assigned)
        params = {
            "limit": free,
            "start": idle,  # these begin their attempt now; the rest when a thread takes them
            "worker": self.worker_id,
            "lease": lease,
            "queues": self.queues,
            "tasks": self.tasks_literal,
        }
        statement = sql.CLAIM_QUEUES if self.queues else sql.CLAIM_ANY_QUEUE
        sent_at = elapsed()
        with _raw_cursor() as cursor:
            cursor.execute(statement, params, prepare=True)
            rows = cursor.fetchall()
            claims = [Claimed.from_row(row, Lease(sent_at, lease)) for row in rows]
            reread_child_steps(cursor, claims)
        self.last_claim_full = len(rows) == free
        with self.lock:
            for claimed in claims:
                self.running[claimed.key] = Held(claimed)
            self.assigned += len(claims)
        for claimed in claims:
            self.jobs.put(claimed)
        return len(rows)

    def _flush(self) -> None:
        """Write every outcome gathered so far in one transaction."""
        with self.lock:
            batch, self.outcomes = self.outcomes, []
        if not batch:
            return
        batch.sort(key=lambda outcome: outcome.id)  # rows are locked in id order everywhere
        settled: list[Outcome] = []
        try:
            rows = self._finish_each_good(batch, settled)
        except BaseException:
            with self.lock:  # keep what is not written for the next try
                self.outcomes[:0] = [o for o in batch if not any(o is s for s in settled)]
            raise
        written = {row[0] for row in rows}
        lost = [o.id for o in batch if o.id not in written]
        if lost:
            logger.warning(
                "Lost the lease on executions %s before writing their outcome; "
                "their new owner decides",
                lost,
                extra={"action": "lease_lost", "worker_id": self.worker_id},
            )
        with self.lock:
            for outcome in batch:
                self.running.pop((outcome.id, outcome.claims), None)
            self.processed += len(batch)

    def _finish_each_good(self, batch: list[Outcome], settled: list[Outcome]) -> list[Any]:
        """Write ``batch`` in one transaction and add it to ``settled``; when PostgreSQL
        refuses a value in it, the halves are written in transactions of their own until
        the outcome that holds it is alone, and that one is written as a failed attempt
        with storable text. A data error never counts as a lost database."""
        columns = sql.columns(
            batch,
            ids="id",
            claims="claims",
            statuses="status",
            run_ats="run_at",
            run_ins="run_in",
            results="result",
            errors="error",
            tracebacks="traceback",
            refunds="refund",
        )
        conn = raw_connection()
        try:
            with conn.transaction(), sql.server_cursor(conn) as cursor:
                cursor.execute(sql.FINISH_ATTEMPTS, columns, prepare=True)
                rows = cursor.fetchall()
                after_status_changes(cursor, rows)
        except payloads.UNSTORABLE as exc:
            if len(batch) > 1:
                half = len(batch) // 2
                first = self._finish_each_good(batch[:half], settled)
                return first + self._finish_each_good(batch[half:], settled)
            (outcome,) = batch
            storable = outcome.storable(exc)
            if storable == outcome:  # nothing left to make storable: leave it to its lease
                logger.error("Could not write the outcome of execution %s: %s", outcome.id, exc)
                settled.append(outcome)
                return []
            logger.error(
                "PostgreSQL refused the outcome of execution %s (%s); writing it as failed",
                outcome.id,
                payloads.first_line(exc),
                extra={"action": "outcome_refused", "worker_id": self.worker_id},
            )
            rows = self._finish_each_good([storable], [])
            settled.append(outcome)
            return rows
        settled.extend(batch)
        return rows

    def _drain(self) -> None:
        """After a stop: let running executions finish within the grace period."""
        deadline = time.monotonic() + settings.SHUTDOWN_GRACE
        while True:
            try:
                self._flush()
            except DB_ERRORS as exc:
                self._database_trouble(exc, 1.0)
            with self.lock:
                busy = bool(self.running) or bool(self.outcomes)
            if not busy or self.stopped_hard.is_set() or time.monotonic() >= deadline:
                return
            self.wake.wait(0.05)
            self.wake.clear()

    def _hand_back(self) -> None:
        """Give whatever this process still holds back to the queue, without using up its
        attempt; by claim, so that another process with the same worker id keeps its own."""
        try:
            self._flush()
            with self.lock:
                held = list(self.running)
            conn = raw_connection()
            with conn.transaction(), sql.server_cursor(conn) as cursor:
                cursor.execute(sql.HAND_BACK, {"worker": self.worker_id, **sql.claim_pairs(held)})
                rows = cursor.fetchall()
                after_status_changes(cursor, [(i, "pending", q, False, True) for i, q in rows])
            if rows:
                logger.warning(
                    "Handed back %d running executions: %s",
                    len(rows),
                    [r[0] for r in rows],
                    extra={"action": "hand_back", "worker_id": self.worker_id},
                )
        except DB_ERRORS as exc:
            logger.error(
                "Could not hand back running executions (%s); their leases will expire", exc
            )

    def _forget_self(self) -> None:
        try:
            with _raw_cursor() as cursor:
                cursor.execute(sql.FORGET_WORKER, {"worker": self.worker_id})
        except DB_ERRORS:
            pass

    # -- execution slots ---------------------------------------------------------------

    def _slot(self) -> None:
        while True:
            claimed = self.jobs.get()
            if claimed is None:
                break
            waited = time.monotonic() - claimed.claimed_at
            with self.lock:
                self.longest_queue_wait = max(self.longest_queue_wait, waited)
            try:
                outcome = run_attempt(
                    claimed,
                    stopping=self.stopping,
                    writer=self.step_writer,
                    starter=self.attempt_starter,
                    started=self._started,
                )
            except BaseException as exc:  # never lose a slot, never leave it "running"
                logger.exception("Unexpected error running execution %s", claimed.id)
                outcome = hand_back(claimed, exc)
            with self.lock:
                self.assigned -= 1
                if outcome is None:
                    self.running.pop(claimed.key, None)
                else:
                    self.outcomes.append(outcome)
            self.wake.set()
        connection.close()

    def _started(self, claimed: Claimed, ctx: Context) -> None:
        with self.lock:
            held = self.running.get(claimed.key)
            if held is not None:
                held.ctx = ctx

    # -- background duties -------------------------------------------------------------

    def _heartbeat(self) -> None:
        """Beat until everything is handed back, not just until a stop is asked: executions
        still finishing within the shutdown grace keep their leases."""
        while not self.finished.wait(settings.HEARTBEAT_INTERVAL):
            try:
                self._beat()
            except DB_ERRORS as exc:
                logger.warning("Heartbeat failed (%s); will retry", exc)
                connection.close()
        connection.close()

    def _beat(self) -> None:
        """Renew leases and the heartbeat row, then re-queue dead workers' executions."""
        conn = raw_connection()
        with sql.server_cursor(conn) as cursor:
            cursor.execute(
                sql.BEAT,
                {
                    "worker": self.worker_id,
                    "host": self.host,
                    "pid": os.getpid(),
                    "queues": payloads.dumps(self.queues),
                    "tasks": payloads.dumps(self.task_names),
                    "concurrency": self.concurrency,
                },
            )
        self._renew_leases(conn)
        with conn.transaction(), sql.server_cursor(conn) as cursor:
            cursor.execute(sql.REAP_EXPIRED)
            reaped = cursor.fetchall()
            after_status_changes(cursor, reaped)
        if reaped:
            logger.warning(
                "Re-queued %d executions whose worker stopped renewing its lease: %s",
                len(reaped),
                [r[0] for r in reaped],
                extra={"action": "reap", "worker_id": self.worker_id},
            )
        with sql.server_cursor(conn) as cursor:
            cursor.execute(sql.FORGET_DEAD_WORKERS, {"age": settings.LEASE * 4})

    def _renew_leases(self, conn: psycopg.Connection) -> None:
        """Renew every lease this process holds. Rows the step writer holds for a moment are
        waited for, never skipped; a row another session keeps locked is given up on after
        a short wait, so that it cannot hold back the renewal of all the others."""
        with self.lock:
            held = {key: entry.claimed.lease for key, entry in self.running.items()}
        rows = self._renew(conn, sql.RENEW_LEASES_UNLOCKED, held, set(held))
        locked = set(held) - {(row[0], row[1]) for row in rows}
        if locked:
            wait_ms = int(max(0.1, settings.HEARTBEAT_INTERVAL / 2) * 1000)
            try:
                with conn.transaction(), sql.server_cursor(conn) as cursor:
                    cursor.execute(sql.LOCK_TIMEOUT, [f"{wait_ms}ms"])
                    rows += self._renew(conn, sql.RENEW_LEASES_WAITING, held, locked)
            except psycopg.errors.LockNotAvailable:
                logger.warning(
                    "Could not renew the leases of executions %s: another session keeps "
                    "their rows locked",
                    sorted(key[0] for key in locked),
                    extra={"action": "renew_blocked", "worker_id": self.worker_id},
                )
        self._note_cancellations(row[0] for row in rows if row[2])

    def _renew(
        self,
        conn: psycopg.Connection,
        statement: str,
        held: dict[tuple[int, int], Lease],
        keys: set[tuple[int, int]],
    ) -> list[Any]:
        """Renew ``keys`` with ``statement``, and this process's view of each one renewed,
        counted from when the statement was sent."""
        lease = settings.LEASE
        sent_at = elapsed()
        with sql.server_cursor(conn) as cursor:
            params = {"worker": self.worker_id, "lease": lease, **sql.claim_pairs(keys)}
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        for execution_id, claims, _cancelled in rows:
            held[(execution_id, claims)].renewed(sent_at, lease)
        return rows

    def _note_cancellations(self, execution_ids: Iterable[int]) -> None:
        wanted = set(execution_ids)
        with self.lock:
            for (execution_id, _claims), held in self.running.items():
                if execution_id in wanted and held.ctx is not None:
                    held.ctx.request_cancel()

    def _listen(self) -> None:
        """Wake the main loop as soon as new work is announced on a queue we serve, and
        pass cancellations of what we run on to their handlers."""
        backoff = 0.0
        while not self.stopping.is_set():
            try:
                with connect_listener(sql.READY_CHANNEL, sql.CANCEL_CHANNEL) as listener:
                    backoff = 0.0
                    self.wake.set()  # catch up on anything announced while not listening
                    while not self.stopping.is_set():
                        for note in listener.notifies(timeout=1.0):
                            if note.channel == sql.CANCEL_CHANNEL:
                                self._note_cancellations(ids_of(note.payload))
                            elif not self.queues or note.payload in self.queues:
                                self.wake.set()
            except Exception as exc:  # the main loop logs database trouble; just back off
                backoff = _next_backoff(backoff)
                logger.debug("Listener disconnected (%s); reconnecting in %.1fs", exc, backoff)
                self.stopping.wait(backoff)


@dataclass
class Held:
    """A claim this process holds; ``ctx`` once its attempt has started."""

    claimed: Claimed
    ctx: Context | None = None


def _next_backoff(backoff: float) -> float:
    """Half a second, then doubling, up to ``MAX_BACKOFF``."""
    return min(MAX_BACKOFF, backoff * 2 or 0.5)


def _text_array(items: list[str]) -> str:
    """A ``text[]`` literal: ``{"a","b\\"c"}``."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return "{" + ",".join(quoted) + "}"


def _raw_cursor() -> psycopg.Cursor:
    return sql.server_cursor(raw_connection())
