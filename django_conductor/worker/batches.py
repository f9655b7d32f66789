"""One attempt of a batch: a batch task's handler called once for several of its executions
claimed together, and how that call ends turned into one ``Outcome`` for each of them. Each
member keeps its own attempts and retry schedule; the batch itself is never stored."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections

from .. import payloads
from ..batch_context import BatchContext
from ..exceptions import NonRetryableError
from ..registry import registry
from ..replay import Event, Park, WindowClosed
from ..statuses import Status
from .attempt import defer_tick, failure, hand_back, next_tick
from .claimed import Claimed, Outcome
from .connections import DB_ERRORS, raw_connection
from .telemetry import BatchWatch, watch_batch

if TYPE_CHECKING:
    from ..definition import Task

logger = logging.getLogger("django_conductor.worker")


@dataclass(frozen=True)
class Batch:
    """Executions of one batch task claimed together, for one thread."""

    members: tuple[Claimed, ...]

    @property
    def claimed_at(self) -> float:
        return self.members[0].claimed_at


def run_batch(
    batch: Batch,
    *,
    stopping: threading.Event,
    started: Callable[[list[Claimed], BatchContext], None],
) -> list[Outcome]:
    """Run one attempt of ``batch``: an outcome for each member, in the members' order."""
    ended: dict[int, Outcome] = {}
    members: list[Claimed] = []
    for claimed in batch.members:
        if not claimed.lease.held:  # held ahead past its lease: back, using no attempt
            ended[claimed.id] = claimed.outcome(Status.PENDING, run_in=0.0, refund=1)
        elif claimed.cancel_requested:
            ended[claimed.id] = claimed.outcome(Status.CANCELLED)
        else:
            members.append(claimed.begun() if claimed.prefetched else claimed)
    if members:
        for claimed, outcome in zip(members, _attempt(members, stopping, started), strict=True):
            ended[claimed.id] = outcome
    return [ended[claimed.id] for claimed in batch.members]


def _attempt(
    members: list[Claimed],
    stopping: threading.Event,
    started: Callable[[list[Claimed], BatchContext], None],
) -> list[Outcome]:
    db = connections[DEFAULT_DB_ALIAS]
    raw_connection(db)
    task = registry.get(members[0].task_name)
    ctx = BatchContext(
        task_name=task.name,
        execution_ids=[claimed.id for claimed in members],
        attempts=[claimed.attempt for claimed in members],
        stopping=stopping,
        clock=members[0].clock,
        window=task.parsed_window,
    )
    events = [Event(c.event_name, c.payload, c.id, c.attempt, c.scheduled_at) for c in members]
    watch = watch_batch(members, events)
    started(members, ctx)
    if watch is None:
        return _run(members, ctx, task, events, db, None)
    try:
        outcomes = _run(members, ctx, task, events, db, watch)
    except BaseException as exc:  # run_slot hands them back
        watch.raised(exc)
        watch.finished([hand_back(claimed, exc) for claimed in members])
        raise
    watch.finished(outcomes)
    return outcomes


def _run(
    members: list[Claimed],
    ctx: BatchContext,
    task: Task,
    events: list[Event],
    db: Any,
    watch: BatchWatch | None,
) -> list[Outcome]:
    try:
        try:
            ctx.checkpoint()  # a stop or a closed window, before it starts
        except WindowClosed as closed:
            for claimed in members:
                if claimed.scheduled_at is not None:
                    defer_tick(claimed, closed)
            raise
        for claimed in members:
            if claimed.scheduled_at is not None:
                next_tick(claimed)
        call = task.func(events, ctx)
        returned = asyncio.run(call) if task.is_async else call
        texts = results(returned, len(members))
        outcomes = [
            claimed.outcome(Status.COMPLETED, result=text, error="")
            for claimed, text in zip(members, texts, strict=True)
        ]
    except Park as park:
        outcomes = [
            claimed.outcome(park.status, run_at=park.run_at, run_in=park.run_in, refund=1)
            for claimed in members
        ]
    except Exception as exc:
        if watch is not None:
            watch.raised(exc)
        if isinstance(exc, DB_ERRORS) and not db.is_usable():
            db.close()  # the database went away under the batch: not the handler's fault
            ctx.logger.warning("Lost the database connection; handing the batch back")
            return [hand_back(claimed, exc) for claimed in members]
        outcomes = [failure(claimed, exc) for claimed in members]
        retried = sum(outcome.status == Status.PENDING for outcome in outcomes)
        ctx.logger.warning(
            "A batch of %d failed (%s): %d to be retried, %d failed for good",
            len(members),
            outcomes[0].error,
            retried,
            len(members) - retried,
        )
    return [
        claimed.outcome(Status.CANCELLED) if claimed.id in ctx.cancelled else outcome
        for claimed, outcome in zip(members, outcomes, strict=True)
    ]


def results(returned: Any, size: int) -> list[str]:
    """The members' results as stored JSON, from what the handler returned: None for all,
    or a list with one result per event, in the events' order."""
    if returned is None:
        returned = [None] * size
    if not isinstance(returned, list) or len(returned) != size:
        got = f"a list of {len(returned)}" if isinstance(returned, list) else repr(returned)[:100]
        raise NonRetryableError(
            f"A batch handler must return None or a list with one result per event ({size} "
            f"here), not {got}."
        )
    return [_stored(n, result) for n, result in enumerate(returned)]


def _stored(n: int, result: Any) -> str:
    def refused(why: str) -> Exception:
        return NonRetryableError(
            f"The batch handler's result for event {n} cannot be stored: {why}"
        )

    return payloads.dumps_or(result, refused, root="the result")
