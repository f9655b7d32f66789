"""The ``@task`` decorator and ``Task``, the registered handle users invoke."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, overload

from .api import enqueue
from .conf import seconds, settings
from .handle import ExecutionHandle
from .registry import registry

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
        window: tuple[str, str] | None = None,
        remove_on_complete: bool = False,
        remove_on_fail: bool = False,
        batch: int | None = None,
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
        self.window = window
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
        errors = []
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200:
            errors.append(
                f"name must be a non-empty string of at most 200 characters, not {self.name!r}"
            )
        if not isinstance(self.queue, str) or not self.queue.strip() or len(self.queue) > 100:
            errors.append(
                f"queue must be a non-empty string of at most 100 characters, not {self.queue!r}"
            )
        if not _is_int(self.max_attempts) or self.max_attempts < 1:
            errors.append(
                f"max_attempts must be an integer of at least 1, not {self.max_attempts!r}"
            )
        if not _is_int(self.priority):
            errors.append(f"priority must be an integer, not {self.priority!r}")
        if self.concurrency is not None and (not _is_int(self.concurrency) or self.concurrency < 1):
            errors.append(
                f"concurrency must be None or an integer of at least 1, not {self.concurrency!r}"
            )
        if self.batch is not None and (not _is_int(self.batch) or self.batch < 1):
            errors.append(f"batch must be None or an integer of at least 1, not {self.batch!r}")
        if self.retry_delays is not None and not callable(self.retry_delays):
            delays = self.retry_delays
            if (
                isinstance(delays, str | bytes)
                or not isinstance(delays, Sequence)
                or not delays
                or not all(_is_duration(d) for d in delays)
            ):
                errors.append(
                    "retry_delays must be a callable or a non-empty sequence of seconds or "
                    f"timedeltas, none negative, not {delays!r}"
                )
        if not callable(self.func):
            errors.append(f"the handler must be callable, not {self.func!r}")
        return errors

    #: Options from the design that later versions enforce; a check warns when one is set.
    NOT_ENFORCED_YET: ClassVar[dict[str, Any]] = {
        "concurrency": None,
        "window": None,
        "remove_on_complete": False,
        "remove_on_fail": False,
        "batch": None,
        "triggers": (),
    }

    def unenforced_options(self) -> list[str]:
        return [
            f"{option}={getattr(self, option)!r}"
            for option, default in self.NOT_ENFORCED_YET.items()
            if getattr(self, option) != default
        ]

    def __repr__(self) -> str:
        return f"<Task {self.name}>"

    def __call__(self, event: Any, ctx: Any) -> Any:
        """Call the handler directly, as in a unit test."""
        return self.func(event, ctx)

    def retry_delay(self, next_attempt: int) -> float:
        """Seconds to wait before ``next_attempt`` (2 for the first retry)."""
        return retry_delay(self.retry_delays, next_attempt)

    def invoke(
        self,
        payload: Any = None,
        *,
        dedupe_key: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        queue: str | None = None,
    ) -> ExecutionHandle:
        """Enqueue one execution, inside the caller's transaction when there is one."""
        return enqueue(
            self,
            [payload],
            dedupe_key=dedupe_key,
            priority=priority,
            run_at=run_at,
            delay=delay,
            queue=queue,
        )[0]

    def invoke_many(
        self,
        payloads: Iterable[Any],
        *,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        queue: str | None = None,
    ) -> list[ExecutionHandle]:
        """Enqueue one execution per payload in a single statement."""
        return enqueue(
            self, list(payloads), priority=priority, run_at=run_at, delay=delay, queue=queue
        )


def retry_delay(delays: RetryDelays | None, next_attempt: int) -> float:
    """Seconds before ``next_attempt`` under ``delays`` (the settings' default when None)."""
    if delays is None:
        delays = settings.RETRY_DELAYS
    if callable(delays):
        return max(0.0, seconds(delays(next_attempt)))
    index = min(max(next_attempt - 2, 0), len(delays) - 1)
    return max(0.0, seconds(delays[index]))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_duration(value: object) -> bool:
    if isinstance(value, timedelta):
        return value >= timedelta(0)
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


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
