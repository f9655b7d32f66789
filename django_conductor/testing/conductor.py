"""``Conductor``: the test helpers as one object, which the pytest plugin's ``conductor``
fixture gives a test."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..handle import ExecutionHandle
from ..models import Execution
from ..worker import Worker
from . import assertions
from .draining import DEFAULT_LIMIT, Drained, drain, run_one
from .eager_mode import eager
from .threads import worker_thread
from .time_travel import advance

if TYPE_CHECKING:
    from ..definition import Task


class Conductor:
    def drain(self, *, limit: int = DEFAULT_LIMIT, queues: Iterable[str] = ()) -> Drained:
        return drain(limit=limit, queues=queues)

    def run_one(self, execution: Execution | ExecutionHandle | int) -> Execution:
        return run_one(execution)

    def advance(self, delta: timedelta | float, *, drain: bool = False) -> Drained | None:
        """``advance()``, then with ``drain`` run what fell due."""
        advance(delta)
        return self.drain() if drain else None

    def eager(self, *, limit: int = DEFAULT_LIMIT) -> AbstractContextManager[None]:
        return eager(limit=limit)

    def worker(self, **options: Any) -> AbstractContextManager[Worker]:
        return worker_thread(**options)

    def invoked(
        self, task: Task | str, payload: Any = assertions.ANY, *, status: str | None = None
    ) -> list[Execution]:
        return assertions.invoked(task, payload, status=status)

    def assert_invoked(
        self,
        task: Task | str,
        payload: Any = assertions.ANY,
        *,
        count: int | None = None,
        status: str | None = None,
    ) -> list[Execution]:
        return assertions.assert_invoked(task, payload, count=count, status=status)

    def assert_not_invoked(
        self, task: Task | str, payload: Any = assertions.ANY, *, status: str | None = None
    ) -> None:
        assertions.assert_not_invoked(task, payload, status=status)
