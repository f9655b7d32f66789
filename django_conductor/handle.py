"""``ExecutionHandle``: what ``invoke`` returns, to look at or wait for an execution."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.db import connection

from . import payloads
from .exceptions import ExecutionCancelled, ExecutionFailed
from .notify import connect_listener
from .sql import EXECUTION, FINISHED_CHANNEL

_STATE = f"SELECT status, result::text, error FROM {EXECUTION} WHERE id = %s"


@dataclass(frozen=True)
class ExecutionHandle:
    id: int

    def status(self) -> str:
        """The current status, e.g. ``"pending"`` or ``"completed"``."""
        with connection.cursor() as cursor:
            cursor.execute(_STATE, [self.id])
            row = cursor.fetchone()
        if row is None:
            raise ExecutionFailed(f"Execution {self.id} does not exist (removed or rolled back).")
        return str(row[0])

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution finishes; return its result or raise its failure.

        Woken by NOTIFY on its own connection, so it sees only committed work: calling it
        inside the transaction that invoked the execution can only time out. Raises
        ``ExecutionFailed``, ``ExecutionCancelled`` or ``TimeoutError``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with connect_listener(FINISHED_CHANNEL) as listener:
            while True:
                row = listener.execute(_STATE, [self.id]).fetchone()
                if row is None:
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
