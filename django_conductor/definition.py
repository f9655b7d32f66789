"""The ``@task`` decorator and ``Task``, the registered handle users invoke."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, overload

from .api import enqueue
from .conf import seconds, settings
from .handle import ExecutionHandle
from .options import TASK_OPTIONS
from .registry import registry
from .triggers.cron import Cron
from .triggers.events import OnEvent
from .triggers.rows import OnModel

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
        problems = (check(getattr(self, option)) for option, check in TASK_OPTIONS.items())
        return [problem for problem in problems if problem is not None]

    #: Options from the design that later versions enforce; a check warns when one is set.
    NOT_ENFORCED_YET: ClassVar[dict[str, Any]] = {
        "concurrency": None,
        "window": None,
        "remove_on_complete": False,
        "remove_on_fail": False,
        "batch": None,
    }

    def unenforced_options(self) -> list[str]:
        unenforced = [
            f"{option}={getattr(self, option)!r}"
            for option, default in self.NOT_ENFORCED_YET.items()
            if getattr(self, option) != default
        ]
        others = [t for t in self.triggers if not isinstance(t, Cron | OnEvent | OnModel)]
        return unenforced + ([f"triggers={others!r}"] if others else [])

    def trigger_problems(self) -> list[str]:
        """What is wrong with the task's cron and event triggers, for the system checks."""
        problems: list[str] = []
        names: set[str] = set()
        for trigger in self.triggers:
            if isinstance(trigger, OnEvent | OnModel):
                problem = trigger.problem()
                if problem is not None:
                    problems.append(problem)
                continue
            if not isinstance(trigger, Cron):
                continue
            problem = trigger.problem()
            if problem is None and trigger.name in names:
                problem = f"two cron schedules are named {trigger.name!r}"
            names.add(trigger.name)
            if problem is not None:
                problems.append(problem)
        return problems

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
