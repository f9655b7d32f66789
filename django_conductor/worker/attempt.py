"""One attempt of one execution: run its handler with a context and turn however it ends
(a result, a park, an error, a lost lease) into an ``Outcome`` for the worker to write."""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from .. import payloads
from ..context import AsyncContext, Context
from ..definition import retry_delay
from ..exceptions import (
    ChildExecutionFailed,
    ChildExecutionTimeout,
    DuplicateStepName,
    EventTimeout,
    ExecutionCancelled,
    NonRetryableError,
    TransactionNotAllowed,
    error_text,
)
from ..group_commit import WriterUnavailable
from ..registry import registry
from ..replay import Event, LeaseLost, Park, WindowClosed
from ..statuses import Status
from ..step_writer import StepWriter
from ..store.base import server_cursor
from ..triggers.schedules import advance_one, defer_one
from .claimed import Claimed, Outcome
from .connections import DB_ERRORS, raw_connection
from .telemetry import AttemptWatch, watch_attempt

logger = logging.getLogger("django_conductor.worker")

#: Errors that end an execution at once, whatever attempts are left.
FINAL_ERRORS = (
    NonRetryableError,
    ChildExecutionFailed,
    ChildExecutionTimeout,
    DuplicateStepName,
    EventTimeout,
    TransactionNotAllowed,
)


def run_attempt(
    claimed: Claimed,
    *,
    stopping: threading.Event,
    writer: StepWriter,
    started: Callable[[Claimed, Context], None],
) -> Outcome | None:
    """Run one attempt of ``claimed`` and say how it ended; None when another worker owns
    the execution now and nothing must be written."""
    if not claimed.lease.held:
        # Claimed ahead and not started before the lease ran out (a frozen process): give it
        # back unless another worker has taken it over, without using an attempt.
        logger.warning("Execution %s waited past its lease; handing it back", claimed.id)
        return claimed.outcome(Status.PENDING, run_in=0.0, refund=1)
    db = connections[DEFAULT_DB_ALIAS]  # this thread's; looked up once, not per use
    raw_connection(db)
    if claimed.prefetched:
        # Held ahead of a free thread, it has used no attempt: a worker killed while holding
        # it costs the execution nothing. Its attempt is counted by its outcome, with no
        # write before it starts; a worker killed during it leaves it uncounted, and from
        # then on each claim counts one at once (``store.outcomes.REAP_EXPIRED``).
        claimed = claimed.begun()
    known = registry.tasks.get(claimed.task_name)
    event = Event(
        claimed.event_name, claimed.payload, claimed.id, claimed.attempt, claimed.scheduled_at
    )
    watch = watch_attempt(claimed, event)
    ctx = Context(
        execution_id=claimed.id,
        task_name=claimed.task_name,
        queue=claimed.queue,
        attempt=claimed.attempt,
        claims=claimed.claims,
        recorded=claimed.steps,
        stopping=stopping,
        db=db,
        writer=writer,
        clock=claimed.clock,
        lease=claimed.lease,
        cancelled=claimed.cancel_requested,
        window=None if known is None else known.parsed_window,
        watch=watch,
    )
    started(claimed, ctx)
    if watch is None:
        return _run(claimed, ctx, event, db, None)
    try:
        outcome = _run(claimed, ctx, event, db, watch)
    except BaseException as exc:  # run_slot hands it back
        watch.raised(exc)
        watch.finished(hand_back(claimed, exc))
        raise
    watch.finished(outcome)
    return outcome


def _run(
    claimed: Claimed, ctx: Context, event: Event, db: Any, watch: AttemptWatch | None
) -> Outcome | None:
    done = claimed.outcome
    try:
        try:
            ctx.release_point()  # a cancel, a stop or a closed window, before it starts
        except WindowClosed as closed:
            if claimed.scheduled_at is not None:
                defer_tick(claimed, closed)
            raise
        if claimed.scheduled_at is not None:
            next_tick(claimed)
        task = registry.get(claimed.task_name)
        if task.is_async:
            result = asyncio.run(task.func(event, AsyncContext(ctx)))
        else:
            result = task.func(event, ctx)
        text = payloads.dumps_or(
            result,
            lambda why: NonRetryableError(
                f"The handler returned a value that cannot be stored: {why}"
            ),
            root="the result",
        )
        return done(Status.COMPLETED, result=text, error="")
    except Park as park:
        return done(park.status, run_at=park.run_at, run_in=park.run_in, refund=1)
    except LeaseLost:
        ctx.logger.warning("Lost the lease mid-attempt; abandoning it to the new owner")
        return None
    except ExecutionCancelled:
        return done(Status.CANCELLED)  # keeps the reason cancel() stored
    except WriterUnavailable as exc:
        ctx.logger.warning("Could not record a step (%s); handing the execution back", exc)
        return hand_back(claimed, exc)
    except Exception as exc:
        if watch is not None:
            watch.raised(exc)
        if isinstance(exc, DB_ERRORS) and not db.is_usable():
            # The database went away under this attempt: not the handler's fault.
            db.close()
            ctx.logger.warning("Lost the database connection; handing the execution back")
            return hand_back(claimed, exc)
        return _failure(claimed, ctx, exc)


def next_tick(claimed: Claimed) -> None:
    """A tick's start creates its schedule's next tick, before the handler runs: a failing
    run still schedules the next one."""
    conn = raw_connection()
    with conn.transaction(), server_cursor(conn) as cursor:
        advance_one(cursor, claimed.task_name, claimed.event_name)


def defer_tick(claimed: Claimed, closed: WindowClosed) -> None:
    """A tick that waits for its window stands for its schedule's ticks until the window
    opens: the schedule's next tick becomes the first after the opening."""
    conn = raw_connection()
    with conn.transaction(), server_cursor(conn) as cursor:
        defer_one(cursor, claimed.task_name, claimed.event_name, closed.run_at)


def _failure(claimed: Claimed, ctx: Context, exc: Exception) -> Outcome:
    outcome = failure(claimed, exc)
    if outcome.status == Status.FAILED:
        ctx.logger.error("Failed for good after attempt %d: %s", claimed.attempt, outcome.error)
    else:
        ctx.logger.warning(
            "Attempt %d failed (%s); retrying in %.0fs",
            claimed.attempt,
            outcome.error,
            outcome.run_in,
        )
    return outcome


def failure(claimed: Claimed, exc: Exception) -> Outcome:
    """How an attempt that raised ``exc`` ends: failed for good (a final error, or its last
    attempt), else pending until its task's next retry delay has passed."""
    error = payloads.storable_text(error_text(exc))
    if isinstance(exc, FINAL_ERRORS) or claimed.attempt >= claimed.max_attempts:
        trace = payloads.storable_text(traceback.format_exc())
        return claimed.outcome(Status.FAILED, error=error, traceback=trace)
    task = registry.tasks.get(claimed.task_name)
    delays = task.retry_delays if task is not None else None
    delay = retry_delay(delays, claimed.attempt + 1)
    return claimed.outcome(Status.PENDING, run_in=delay, error=error)


def hand_back(claimed: Claimed, exc: BaseException) -> Outcome:
    """Back to pending without using up the attempt: the failure was not the handler's."""
    error = payloads.storable_text(error_text(exc))
    return claimed.outcome(Status.PENDING, run_in=0.0, refund=1, error=error)
