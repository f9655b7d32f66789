"""An attempt's step records as its ``ctx`` writes them: each handed to the worker's step
writer and committed before the handler goes on."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any, Protocol

from . import payloads
from .exceptions import StepResultError, error_text
from .group_commit import WriterClosed
from .replay import LeaseLost
from .step_writer import StepRecord, StepWriter


class StepWatcher(Protocol):
    """The attempt's telemetry, as a step sees it: a context around running its function."""

    def step(self, name: str) -> AbstractContextManager[Any]: ...


class StepRecords:
    """This attempt's records, each handed to the worker's step writer and committed before
    the handler goes on; shared by the sync and the async ``ctx``."""

    def __init__(self, execution_id: int, claims: int, writer: StepWriter) -> None:
        self._execution_id = execution_id
        self._claims = claims
        self._writer = writer

    def returned(self, name: str, value: Any, began: float) -> Any:
        """Record a step's result; returns it as a replay will (through JSON)."""
        try:
            text = payloads.dumps_or(
                value,
                lambda why: StepResultError(
                    f"Step {name!r} returned a value that is not JSON: {why}"
                ),
                root="the result",
            )
        except StepResultError as exc:
            self.raised(name, began, exc)
            raise
        self.write(name, "step", result=text, began=began, ended=time.monotonic())
        return payloads.loads(text)

    def raised(self, name: str, began: float, exc: Exception) -> None:
        """Put the step that raised on record, for the admin to draw; a replay runs it again."""
        failure = error_text(exc)
        self.write(name, "step", failure=failure, began=began, ended=time.monotonic())

    def write(self, name: str, kind: str, **fields: Any) -> StepRecord:
        """Hand a record to the step writer and wait until it is committed."""
        record = StepRecord(
            execution_id=self._execution_id, claims=self._claims, name=name, kind=kind, **fields
        )
        try:
            written = self._writer.record(record)
        except WriterClosed:
            raise LeaseLost(name) from None  # the worker handed this execution back
        if not written:
            raise LeaseLost(name)
        return record
