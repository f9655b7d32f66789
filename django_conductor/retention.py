"""Retention: which finished executions are kept how long, and the pruning pass that
removes the rest, for the worker's pruning duty and ``manage.py conductor_prune``.

Everything of an execution goes with it: its steps, its failure records and the executions
below it, which go with their root and only once all of them have finished."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection, transaction

from .conf import Settings, seconds, settings
from .registry import registry
from .statuses import Status
from .store import retention as store
from .store.retention import Keep, Removed

#: Trees removed per batch, each batch a short transaction of its own.
BATCH_SIZE = 1000
#: The pause between batches, which leaves the database to the workers' own statements: at
#: least ``PAUSE`` seconds, and ``YIELD`` times as long as the batch took, so that pruning
#: takes at most a third of the time however busy the database is.
PAUSE = 0.05
YIELD = 2.0

_FAILED_ENDS = (Status.FAILED.value, Status.CANCELLED.value)


def project_retention() -> dict[str, float | None]:
    """Seconds to keep each finished status for (None: for ever), from the setting."""
    configured = {**Settings.RETENTION, **settings.RETENTION}
    configured.setdefault("cancelled", configured["failed"])
    return {status: None if keep is None else seconds(keep) for status, keep in configured.items()}


def _task_seconds(option: bool | timedelta) -> float | None:
    """None when the task follows the project's retention."""
    if option is True:
        return 0.0
    if isinstance(option, timedelta):
        return option.total_seconds()
    return None


def rules(tasks: Iterable[Any] | None = None) -> list[Keep]:
    """The project's rule per status, then each task's own: ``remove_on_complete`` for its
    completed executions, ``remove_on_fail`` for its failed and cancelled ones."""
    keep = [Keep(None, status, kept) for status, kept in sorted(project_retention().items())]
    for task in sorted(registry if tasks is None else tasks, key=lambda task: task.name):
        completed = _task_seconds(task.remove_on_complete)
        if completed is not None:
            keep.append(Keep(task.name, Status.COMPLETED.value, completed))
        failed = _task_seconds(task.remove_on_fail)
        if failed is not None:
            keep.extend(Keep(task.name, status, failed) for status in _FAILED_ENDS)
    return keep


@dataclass
class Pruned:
    """What one pass removed, per (task, status): executions, and of them roots."""

    executions: Counter[tuple[str, str]] = field(default_factory=Counter)
    roots: Counter[tuple[str, str]] = field(default_factory=Counter)
    batches: int = 0

    def add(self, removed: Iterable[Removed]) -> None:
        for row in removed:
            self.executions[(row.task_name, row.status)] += row.executions
            self.roots[(row.task_name, row.status)] += row.roots

    @property
    def total(self) -> int:
        return sum(self.executions.values())


def due() -> Pruned:
    """What a pass would remove now, locking and removing nothing."""
    found = Pruned()
    with transaction.atomic(), connection.cursor() as cursor:
        found.add(store.due(cursor, rules()))
    return found


def prune(
    *,
    wait: bool = False,
    batch_size: int = BATCH_SIZE,
    pause: float = PAUSE,
    stopping: threading.Event | None = None,
) -> Pruned | None:
    """Remove every due tree, batch by batch, on this thread's connection. Returns None,
    having done nothing, when another session is pruning (unless ``wait``).

    Each batch holds the pruning lock for its transaction only, which a transaction pooler
    cannot hand to another client; a pass that finds another session's batch under way
    between two of its own leaves the rest to that session."""
    keep = rules()
    pruned = Pruned()
    rest = stopping or threading.Event()
    while not rest.is_set():
        began = time.monotonic()
        with transaction.atomic(), connection.cursor() as cursor:
            if not store.lock(cursor, wait=wait):
                return pruned if pruned.batches else None
            removed = store.prune_batch(cursor, keep, batch_size)
        pruned.add(removed)
        pruned.batches += 1
        if sum(row.roots for row in removed) < batch_size:
            break  # drained; trees skipped for a lock wait for the next pass
        if pause:
            rest.wait(max(pause, (time.monotonic() - began) * YIELD))
    return pruned
