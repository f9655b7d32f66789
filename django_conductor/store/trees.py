"""Locking and cancelling a tree of executions: parked ones stop at once, running ones are
asked to.

The one lock order: every transaction that may wait for more than one execution row takes
them in id order, and a child's id is always above its parent's, so parents come first.
A tree is therefore locked whole, in id order, before anything in it changes; statements
that cannot keep to the order (the reaper) take their locks with SKIP LOCKED and so wait
for none."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ..statuses import FINISHED as _FINISHED
from ..statuses import LIVE as _LIVE
from ..statuses import Status
from .base import CANCEL_CHANNEL, CANCELLED, EXECUTION, LIVE, RUNNING, Cursor, execute, rows
from .notify import notify_ids
from .transitions import StatusChange, after_status_changes

#: What a cancel can still change; a retry locks the whole tree.
LIVE_STATUSES = tuple(status.value for status in _LIVE)
ANY_STATUS = (*LIVE_STATUSES, *(status.value for status in _FINISHED))

_TREE = f"""
WITH RECURSIVE tree AS (
    SELECT id, parent_id FROM {EXECUTION} WHERE id = %(id)s
    UNION ALL
    SELECT c.id, c.parent_id FROM {EXECUTION} c JOIN tree t ON c.parent_id = t.id
)"""

#: The tree's rows in the given statuses, and its root's parent (which the root's end wakes),
#: locked in id order.
LOCK_TREE = f"""{_TREE}
SELECT e.id FROM {EXECUTION} e
WHERE (e.id IN (SELECT id FROM tree) AND e.status = ANY(%(statuses)s::text[]))
    OR e.id = (SELECT parent_id FROM tree WHERE id = %(id)s)
ORDER BY e.id
FOR NO KEY UPDATE OF e
"""

#: The same rows as they are now, read by a statement of its own (a fresh snapshot).
TREE_IDS = f"""{_TREE}
SELECT e.id FROM {EXECUTION} e JOIN tree t ON t.id = e.id
WHERE e.status = ANY(%(statuses)s::text[])
"""

CANCEL_TREE = f"""{_TREE}
UPDATE {EXECUTION} e SET
    status = CASE WHEN e.status = {RUNNING} THEN {RUNNING} ELSE {CANCELLED} END,
    finished_at = CASE WHEN e.status = {RUNNING} THEN NULL ELSE now() END,
    cancel_requested_at = now(), error = %(reason)s
FROM tree
WHERE e.id = tree.id AND e.status IN {LIVE}
RETURNING e.id, e.status, e.queue, e.parent_id IS NOT NULL, false
"""


class Id(NamedTuple):
    id: int


def lock_tree(cursor: Cursor, root_id: int, statuses: Iterable[str]) -> None:
    """Lock a tree in id order, inside the caller's transaction. A child started while this
    waited for its parent's row is not in the locking statement's snapshot, so the tree is
    read again once every row is held (no child can be started under a held parent); if it
    grew, the locks are let go and taken again, all in order."""
    params = {"id": root_id, "statuses": sorted(statuses)}
    while True:
        execute(cursor, "SAVEPOINT conductor_lock_tree")
        execute(cursor, LOCK_TREE, params)
        locked = {row.id for row in rows(cursor, Id)}
        execute(cursor, TREE_IDS, params)
        if {row.id for row in rows(cursor, Id)} <= locked:
            execute(cursor, "RELEASE SAVEPOINT conductor_lock_tree")
            return
        execute(cursor, "ROLLBACK TO SAVEPOINT conductor_lock_tree")


def cancel_tree(cursor: Cursor, execution_id: int, reason: str) -> bool:
    """Run inside a transaction; returns whether anything was left to cancel."""
    lock_tree(cursor, execution_id, LIVE_STATUSES)
    execute(cursor, CANCEL_TREE, {"id": execution_id, "reason": reason})
    changes = rows(cursor, StatusChange)
    after_status_changes(cursor, changes)
    running = [change.id for change in changes if change.status == Status.RUNNING]
    if running:  # their workers stop them at the next step, without waiting for a heartbeat
        notify_ids(cursor, CANCEL_CHANNEL, running)
    return bool(changes)
