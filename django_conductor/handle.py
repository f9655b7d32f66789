"""``ExecutionHandle``: what ``invoke`` returns, to look at or wait for an execution."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from . import payloads
from .exceptions import ConductorError, ExecutionCancelled, ExecutionFailed
from .notify import connect_listener
from .schema import tables_required
from .sql import EXECUTION, FINISHED_CHANNEL

_STATE = f"SELECT status, result::text, error FROM {EXECUTION} WHERE id = %s"


@dataclass(frozen=True)
class ExecutionHandle:
    id: int

    def status(self) -> str:
        """The current status, e.g. ``"pending"`` or ``"completed"``."""
        with tables_required(), connection.cursor() as cursor:
            cursor.execute(_STATE, [self.id])
            row = cursor.fetchone()
        if row is None:
            raise ExecutionFailed(f"Execution {self.id} does not exist (removed or rolled back).")
        return str(row[0])

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
                row = listener.execute(_STATE, [self.id]).fetchone()
                if row is None:
                    self._refuse_uncommitted()
                    raise ExecutionFailed(
                        f"Execution {self.id} does not exist (removed or rolled back)."
                    )
                status, result, error = row
                if status == "completed":
                    return payloads.loads(result)
                if status == "failed":
                    raise ExecutionFailed(error or f"Execution {self.id} failed.")
                if status == "cancelled":
                    raise ExecutionCancelled(error or f"Execution {self.id} was cancelled.")
                self._await_notification(listener, deadline)

    def _refuse_uncommitted(self) -> None:
        """Tell a caller who waits inside the transaction that invoked the execution why it
        could never finish: no worker can see it before that transaction commits."""
        if not connection.in_atomic_block:
            return
        with connection.cursor() as cursor:
            cursor.execute(_STATE, [self.id])
            if cursor.fetchone() is None:
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
