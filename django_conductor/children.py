"""Child executions, as ``ctx.invoke`` starts and times them out: each a statement fenced on
the parent's claim, so that a parent that lost its lease starts or ends no child."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg

from . import payloads
from .cancellation import cancel_tree
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
from .sql import START_CHILD, TIME_OUT_CHILD, server_cursor

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
    params = {
        "id": owner.execution_id,
        "claims": owner.claims,
        "name": owner.step_name,
        "task_name": child.name,
        "queue": queue or child.queue,
        "payload": text,
        "priority": child.priority,
        "max_attempts": child.max_attempts,
        "timeout": None if timeout is None else seconds(timeout),
    }
    with server_cursor(owner.conn) as cursor:
        cursor.execute(START_CHILD, params)
        row = cursor.fetchone()
    if row is None or not (row[0] or row[1]):
        raise LeaseLost(owner.step_name)
    if row[0]:  # a cancel committed since this attempt last looked: no child for it
        raise ExecutionCancelled(f"Execution {owner.execution_id} was cancelled.")
    deadline: datetime | None = row[2]
    return deadline


def time_out(owner: Owner, deadline: datetime) -> NoReturn:
    """Record the timeout as the invoke step's outcome and cancel the child, in one
    transaction fenced on the parent's claim; a child that ends afterwards changes nothing."""
    reason = f"{TIMEOUT_REASON} at step {owner.step_name!r}."
    params = {
        "id": owner.execution_id,
        "claims": owner.claims,
        "name": owner.step_name,
        "error": reason,
    }
    with owner.conn.transaction(), server_cursor(owner.conn) as cursor:
        cursor.execute(TIME_OUT_CHILD, params)
        row = cursor.fetchone()
        if row is None:
            raise LeaseLost(owner.step_name)
        recorded, child_id = row
        if recorded and child_id is not None:
            cancel_tree(cursor, child_id, reason)
    if not recorded:
        raise Park("pending", run_in=0.0)  # the child's end came first: replay with it
    raise child_error(owner.step_name, reason, deadline)
