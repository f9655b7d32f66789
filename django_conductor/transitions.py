"""What follows an execution's status change, shared by the worker and the API:
finished children wake their parents, waiters and idle workers get notified."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .notify import notify_finished, notify_ready
from .sql import WAKE_PARENTS
from .statuses import FINISHED


def after_status_changes(cursor: Any, rows: Iterable[tuple[Any, ...]]) -> None:
    """Follow up rows of (id, status, queue, has_parent, ready) in the same transaction."""
    finished: list[int] = []
    with_parent: list[int] = []
    ready_queues: set[str] = set()
    for execution_id, status, queue, has_parent, ready in rows:
        if status in FINISHED:
            finished.append(execution_id)
            if has_parent:
                with_parent.append(execution_id)
        elif ready:
            ready_queues.add(queue)
    if with_parent:
        cursor.execute(WAKE_PARENTS, {"ids": with_parent})
        ready_queues.update(
            queue for _id, status, queue in cursor.fetchall() if status == "pending"
        )
    if finished:
        notify_finished(cursor, finished)
    if ready_queues:
        notify_ready(cursor, ready_queues)
