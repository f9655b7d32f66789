"""Cancelling a tree of executions: parked ones stop at once, running ones are asked to."""

from __future__ import annotations

from .notify import notify_ids
from .sql import CANCEL_CHANNEL, EXECUTION
from .transitions import after_status_changes

CANCEL_TREE = f"""
WITH RECURSIVE tree AS (
    SELECT id FROM {EXECUTION} WHERE id = %(id)s
    UNION ALL
    SELECT c.id FROM {EXECUTION} c JOIN tree t ON c.parent_id = t.id
)
UPDATE {EXECUTION} e SET
    status = CASE WHEN e.status = 'running' THEN 'running' ELSE 'cancelled' END,
    finished_at = CASE WHEN e.status = 'running' THEN NULL ELSE now() END,
    cancel_requested_at = now(), error = %(reason)s
FROM tree
WHERE e.id = tree.id AND e.status IN ('pending', 'running', 'sleeping', 'waiting')
RETURNING e.id, e.status, e.queue, e.parent_id IS NOT NULL, false
"""


def cancel_tree(cursor, execution_id: int, reason: str) -> bool:  # type: ignore[no-untyped-def]
    """Run inside a transaction; returns whether anything was left to cancel."""
    cursor.execute(CANCEL_TREE, {"id": execution_id, "reason": reason})
    rows = cursor.fetchall()
    after_status_changes(cursor, rows)
    running = [row[0] for row in rows if row[1] == "running"]
    if running:  # their workers stop them at the next step, without waiting for a heartbeat
        notify_ids(cursor, CANCEL_CHANNEL, running)
    return bool(rows)
