"""Child executions, as ``ctx.invoke`` starts and times them out: each a statement fenced on
the parent's claim, so that a parent that lost its lease starts or ends no child."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg

from . import payloads
from .conf import seconds
from .exceptions import (
    TIMEOUT_REASON,
    ConductorError,
    ExecutionCancelled,
    PayloadError,
    child_error,
)
from .registry import registry
from .replay import LeaseLost, Park
from .statuses import Status
from .store.base import server_cursor
from .store.children import start_child
from .store.steps import time_out_step
from .store.trees import cancel_tree
from .telemetry import producing

if TYPE_CHECKING:
    from .definition import Task


@dataclass(frozen=True)
class Owner:
    """The parent's attempt and invoke step: its connection and its claim."""

    conn: psycopg.Connection
    execution_id: int
    claims: int
    step_name: str


def start(
    owner: Owner,
    task: Task | str,
    payload: Any,
    timeout: float | timedelta | None,
    queue: str | None,
) -> datetime | None:
    """Create the child and the step that waits for it; returns the deadline. Raises
    ``ExecutionCancelled`` when a cancel of the parent committed first."""
    child = registry.get(task) if isinstance(task, str) else task
    if not child.invocable:
        raise ConductorError(f"Task {child.name!r} is not invocable; it runs from its triggers.")
    text = payloads.dumps_or(
        payload,
        lambda why: PayloadError(f"The payload for child {owner.step_name!r} is not JSON: {why}"),
        root="payload",
    )
    queue = queue or child.queue
    sending = producing.sending("invoke", queue, child.name)
    with sending as sent, server_cursor(owner.conn) as cursor:
        started = start_child(
            cursor,
            parent_id=owner.execution_id,
            claims=owner.claims,
            step_name=owner.step_name,
            task_name=child.name,
            queue=queue,
            payload=text,
            priority=child.priority,
            max_attempts=child.max_attempts,
            limit_key=child.limit_key,
            timeout=None if timeout is None else seconds(timeout),
            trace_context=sent.carrier,
        )
        if started is not None and started.child_id is not None:
            sent.created([started.child_id])
    if started is None or not (started.cancelling or started.step_created):
        raise LeaseLost(owner.step_name)
    if started.cancelling:  # a cancel committed since this attempt last looked: no child
        raise ExecutionCancelled(f"Execution {owner.execution_id} was cancelled.")
    return started.deadline


def time_out(owner: Owner, deadline: datetime) -> NoReturn:
    """Record the timeout as the invoke step's outcome and cancel the child, in one
    transaction fenced on the parent's claim; a child that ends afterwards changes nothing."""
    if not record_timeout(owner):
        raise Park(Status.PENDING, run_in=0.0)  # the child's end came first: replay with it
    raise child_error(owner.step_name, timeout_reason(owner.step_name), deadline)


def timeout_reason(step_name: str) -> str:
    return f"{TIMEOUT_REASON} at step {step_name!r}."


def record_timeout(owner: Owner, reason: str | None = None) -> bool:
    """Record ``reason`` (a child's timeout by default) as the open step's outcome, in one
    transaction fenced on the claim, and cancel the step's child if it has one; False when
    the child's end (or, for an event wait, the event) was recorded first."""
    reason = reason or timeout_reason(owner.step_name)
    with owner.conn.transaction(), server_cursor(owner.conn) as cursor:
        timed_out = time_out_step(
            cursor,
            execution_id=owner.execution_id,
            claims=owner.claims,
            step_name=owner.step_name,
            error=reason,
        )
        if timed_out is None:
            raise LeaseLost(owner.step_name)
        if timed_out.recorded and timed_out.child_id is not None:
            cancel_tree(cursor, timed_out.child_id, reason)
    return timed_out.recorded
