"""``ExecutionHandle``: what ``invoke`` returns, to look at or wait for an execution."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from . import payloads
from .exceptions import ConductorError, ExecutionCancelled, ExecutionFailed
from .statuses import Status
from .store.base import FINISHED_CHANNEL
from .store.executions import state
from .store.notify import connect_listener
from .store.schema import tables_required


@dataclass(frozen=True)
class ExecutionHandle:
    id: int

    def status(self) -> str:
        """The current status, e.g. ``"pending"`` or ``"completed"``."""
        with tables_required(), connection.cursor() as cursor:
            found = state(cursor, self.id)
        if found is None:
            raise ExecutionFailed(f"Execution {self.id} does not exist (removed or rolled back).")
        return found.status

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution finishes; return its result or raise its failure.

        It waits on a connection of its own, which sees only committed work, so call it
        after the transaction that invoked the execution has committed: inside that
        transaction it raises ``ConductorError`` at once, saying so. Raises
        ``ExecutionFailed`` (also when the execution does not exist), ``ExecutionCancelled``
        or ``TimeoutError``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with tables_required(), connect_listener(FINISHED_CHANNEL) as listener:
            while True:
                with listener.cursor() as cursor:
                    found = state(cursor, self.id)
                if found is None:
                    self._refuse_uncommitted()
                    raise ExecutionFailed(
                        f"Execution {self.id} does not exist (removed or rolled back)."
                    )
                if found.status == Status.COMPLETED:
                    return payloads.loads(found.result)
                if found.status == Status.FAILED:
                    raise ExecutionFailed(found.error or f"Execution {self.id} failed.")
                if found.status == Status.CANCELLED:
                    raise ExecutionCancelled(found.error or f"Execution {self.id} was cancelled.")
                self._await_notification(listener, deadline)

    def _refuse_uncommitted(self) -> None:
        """Tell a caller who waits inside the transaction that invoked the execution why it
        could never finish: no worker can see it before that transaction commits."""
        if not connection.in_atomic_block:
            return
        with connection.cursor() as cursor:
            if state(cursor, self.id) is None:
                return
        raise ConductorError(
            f"handle.wait() was called inside the transaction that invoked execution "
            f"{self.id}. No worker can see the execution before that transaction commits, "
            "so it would never finish: call wait() after the transaction commits, outside "
            "the atomic block."
        )

    def _await_notification(self, listener, deadline: float | None) -> None:  # type: ignore[no-untyped-def]
        wanted = str(self.id)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"Execution {self.id} did not finish in time.")
            # A bounded wait keeps the loop responsive even if a notification was missed.
            wait = 5.0 if remaining is None else min(remaining, 5.0)
            for note in listener.notifies(timeout=wait):
                if wanted in note.payload.split(","):
                    return
            if remaining is None or remaining > wait:
                return  # re-check the row now and then
