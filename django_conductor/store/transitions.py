"""What follows an execution's status change, in the transaction that made it, whoever made
it (an outcome, the reaper, a hand-back, a cancel): finished children wake their parents;
waiters and idle workers get notified."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ..statuses import FINISHED as _FINISHED
from ..statuses import Status
from .base import (
    CANCELLED,
    COMPLETED,
    EXECUTION,
    FINISHED,
    PENDING,
    RUNNING,
    STEP,
    WAITING,
    Cursor,
    execute,
    rows,
)
from .notify import notify_finished, notify_ready


class StatusChange(NamedTuple):
    """An execution's new status, as every statement that changes one returns it."""

    id: int
    status: str
    queue: str
    has_parent: bool
    #: Due at once: an idle worker should be woken for it.
    ready: bool


#: Record a finished child's outcome as its parent's step and wake the parent once it has
#: no open child left; a parent still running is flagged so that it does not park after
#: missing the wake-up. An outcome
#: is recorded once: a step already finished (a timeout came first) is left as it is. A child
#: cancelled while its parent has a cancel requested went with its parent's cancel, which is
#: no outcome for the parent to see: the step stays open, and retrying the parent retries
#: that child. The caller holds the parents' rows (locked with the children, in id order).
WAKE_PARENTS = f"""
WITH finished AS (
    UPDATE {STEP} s SET
        result = CASE WHEN c.status = {COMPLETED} THEN c.result END,
        error = CASE WHEN c.status = {COMPLETED} THEN ''
                     ELSE coalesce(nullif(c.error, ''), c.status) END,
        finished_at = now()
    FROM {EXECUTION} c JOIN {EXECUTION} p ON p.id = c.parent_id
    WHERE c.id = ANY(%(ids)s::bigint[]) AND s.child_id = c.id AND s.execution_id = p.id
        AND s.finished_at IS NULL AND c.status IN {FINISHED}
        AND NOT (c.status = {CANCELLED} AND p.cancel_requested_at IS NOT NULL)
    RETURNING s.id, s.execution_id
), woken AS (
    -- A parent waits on all its open children (ctx.invoke_all): it runs again once the last
    -- of them has ended, not at each one.
    SELECT DISTINCT f.execution_id AS id FROM finished f
    WHERE NOT EXISTS (
        SELECT FROM {STEP} o
        WHERE o.execution_id = f.execution_id AND o.kind = 'invoke' AND o.finished_at IS NULL
            AND o.id NOT IN (SELECT id FROM finished)
    )
)
UPDATE {EXECUTION} p SET
    status = CASE WHEN p.status = {WAITING} THEN {PENDING} ELSE p.status END,
    run_at = CASE WHEN p.status = {WAITING} THEN now() ELSE p.run_at END,
    wake_pending = p.status = {RUNNING}
FROM woken w WHERE p.id = w.id
RETURNING p.id, p.status, p.queue
"""


class Woken(NamedTuple):
    id: int
    status: str
    queue: str


def wake_parents(cursor: Cursor, child_ids: list[int]) -> list[Woken]:
    execute(cursor, WAKE_PARENTS, {"ids": child_ids})
    return rows(cursor, Woken)


def after_status_changes(cursor: Cursor, changes: Iterable[StatusChange]) -> None:
    """Follow up ``changes`` in the same transaction."""
    finished: list[int] = []
    with_parent: list[int] = []
    ready_queues: set[str] = set()
    for change in changes:
        if change.status in _FINISHED:
            finished.append(change.id)
            if change.has_parent:
                with_parent.append(change.id)
        elif change.ready:
            ready_queues.add(change.queue)
    if with_parent:
        ready_queues.update(
            parent.queue
            for parent in wake_parents(cursor, with_parent)
            if parent.status == Status.PENDING
        )
    if finished:
        notify_finished(cursor, finished)
    if ready_queues:
        notify_ready(cursor, ready_queues)
