"""The ``@task`` decorator and ``Task``, the registered handle users invoke."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, overload

from .api import enqueue
from .conf import seconds, settings
from .handle import ExecutionHandle
from .options import TASK_OPTIONS
from .registry import registry
from .windows import Window

RetryDelays = Sequence[float | timedelta] | Callable[[int], float | timedelta]


class Task:
    """A registered handler plus its options. Invalid options are kept in ``errors``
    for the system checks, so a typo is reported at start-up rather than at import."""

    def __init__(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        *,
        queue: str = "default",
        max_attempts: int = 3,
        retry_delays: RetryDelays | None = None,
        priority: int = 0,
        concurrency: int | None = None,
        concurrency_key: str | None = None,
        window: tuple[str, str] | None = None,
        remove_on_complete: bool | timedelta = False,
        remove_on_fail: bool | timedelta = False,
        batch: int | tuple[int, float | timedelta] | None = None,
        triggers: Iterable[Any] = (),
        invocable: bool = True,
        **unknown: Any,
    ) -> None:
        self.func = func
        self.name = name if name is not None else f"{func.__module__}.{func.__qualname__}"
        self.queue = queue
        self.max_attempts = max_attempts
        self.retry_delays = retry_delays
        self.priority = priority
        self.concurrency = concurrency
        self.concurrency_key = concurrency_key
        self.window = window
        #: The window as the worker checks it; None without one (or with a bad one: E003).
        self.parsed_window = Window.parse(window)
        self.remove_on_complete = remove_on_complete
        self.remove_on_fail = remove_on_fail
        self.batch = batch
        self.triggers = tuple(triggers)
        self.invocable = invocable
        self.is_async = inspect.iscoroutinefunction(func)
        self.errors = [f"unknown option {key}={value!r}" for key, value in unknown.items()]
        self.errors += self._invalid_values()
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def _invalid_values(self) -> list[str]:
        problems = [check(getattr(self, option)) for option, check in TASK_OPTIONS.items()]
        if self.concurrency_key is not None and self.concurrency is None:
            problems.append(
                f"concurrency_key={self.concurrency_key!r} needs a limit: set concurrency too"
            )
        if self.batch is not None and self.concurrency is not None:
            problems.append(
                "batch and concurrency cannot be combined: a batch runs many executions in "
                "one thread, so a limit on executions running at once cannot hold for it"
            )
        return [problem for problem in problems if problem is not None]

    @property
    def batch_size(self) -> int | None:
        """The most events one call of a batch handler gets; None for a task without."""
        if self.batch is None:
            return None
        return self.batch[0] if isinstance(self.batch, tuple) else self.batch

    @property
    def batch_wait(self) -> float:
        """How long (seconds) the first ready event may wait for its batch to fill."""
        return seconds(self.batch[1]) if isinstance(self.batch, tuple) else 0.0

    @property
    def limit_key(self) -> str | None:
        """What its new executions' concurrency key is made from: None for a task claimed
        with the rest, '' for one claimed on its own path as a whole (a task-wide limit, or
        a batch), else the payload field its limit is counted per."""
        if self.batch is not None:
            return ""
        if self.concurrency is None:
            return None
        return self.concurrency_key or ""

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, event: Any, ctx: Any) -> Any:
        """Call the handler directly, as in a unit test."""
        return self.func(event, ctx)

    def retry_delay(self, next_attempt: int) -> float:
        """Seconds to wait before ``next_attempt`` (2 for the first retry)."""
        return retry_delay(self.retry_delays, next_attempt)

    @overload
    def invoke(
        self,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        throttle: None = None,
        debounce: float | timedelta | None = None,
        queue: str | None = None,
    ) -> ExecutionHandle: ...

    @overload
    def invoke(
        self,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        throttle: float | timedelta,
        debounce: None = None,
        queue: str | None = None,
    ) -> ExecutionHandle | None: ...

    def invoke(
        self,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        throttle: float | timedelta | None = None,
        debounce: float | timedelta | None = None,
        queue: str | None = None,
    ) -> ExecutionHandle | None:
        """Enqueue one execution, inside the caller's transaction when there is one. With
        ``throttle``, only the first call of each slot is kept: the others return None."""
        handles = enqueue(
            self,
            [payload],
            dedupe_key=dedupe_key,
            priority=priority,
            run_at=run_at,
            delay=delay,
            throttle=throttle,
            debounce=debounce,
            queue=queue,
        )
        return handles[0] if handles else None

    def invoke_many(
        self,
        payloads: Iterable[Any],
        *,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        throttle: float | timedelta | None = None,
        queue: str | None = None,
    ) -> list[ExecutionHandle]:
        """Enqueue one execution per payload in a single statement (with ``throttle``, only
        the first of the slot)."""
        return enqueue(
            self,
            list(payloads),
            priority=priority,
            run_at=run_at,
            delay=delay,
            throttle=throttle,
            queue=queue,
        )


def retry_delay(delays: RetryDelays | None, next_attempt: int) -> float:
    """Seconds before ``next_attempt`` under ``delays`` (the settings' default when None)."""
    if delays is None:
        delays = settings.RETRY_DELAYS
    if callable(delays):
        return max(0.0, seconds(delays(next_attempt)))
    index = min(max(next_attempt - 2, 0), len(delays) - 1)
    return max(0.0, seconds(delays[index]))


@overload
def task(name: Callable[..., Any], /) -> Task: ...


@overload
def task(name: str | None = None, **options: Any) -> Callable[[Callable[..., Any]], Task]: ...


def task(
    name: str | Callable[..., Any] | None = None, **options: Any
) -> Task | Callable[[Callable[..., Any]], Task]:
    """Register a handler ``def handler(event, ctx)`` (or ``async def``) as a task.

    Usable bare (``@task``) or with options (``@task(name="send-mail", max_attempts=5)``).
    """
    if callable(name):
        return _register(name, None, options)

    def decorator(func: Callable[..., Any]) -> Task:
        return _register(func, name, options)

    return decorator


def _register(func: Callable[..., Any], name: str | None, options: dict[str, Any]) -> Task:
    new = Task(func, name, **options)
    registry.register(new)
    return new
