"""The worker's pruning duty: every ``CONDUCTOR_PRUNE_INTERVAL``, remove the finished
executions past their retention. Workers take turns by a database lock, so only one of them
prunes at a time and the others skip the turn."""

from __future__ import annotations

import logging
import threading

from django.db import connection

from ..conf import settings
from ..retention import prune
from .base import Identity
from .connections import DB_ERRORS

logger = logging.getLogger("django_conductor.worker")


class Pruner:
    def __init__(self, identity: Identity, stopping: threading.Event):
        self.identity = identity
        self.stopping = stopping

    def run(self) -> None:
        """Prune soon after start, then every interval, until the worker stops."""
        interval = settings.PRUNE_INTERVAL
        if interval is None:
            return
        wait = min(interval, settings.HEARTBEAT_INTERVAL)
        while not self.stopping.wait(wait):
            wait = interval
            try:
                self.prune()
            except DB_ERRORS as exc:
                logger.warning("Pruning failed (%s); will retry", exc)
                connection.close()
        connection.close()

    def prune(self) -> None:
        pruned = prune(stopping=self.stopping)
        if pruned is None or not pruned.total:
            return
        counts = pruned.executions
        logger.info(
            "Pruned %d finished executions past their retention: %s",
            pruned.total,
            ", ".join(f"{task} {status} {n}" for (task, status), n in sorted(counts.items())),
            extra={"action": "prune", "worker_id": self.identity.worker_id},
        )
