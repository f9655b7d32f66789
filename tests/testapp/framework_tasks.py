"""Django tasks (the framework's ``@task``) that the backend tests enqueue; they record
SideEffect rows so that tests can count their runs."""

import time
from typing import Any

from django_conductor.backends.framework import TaskContext, task

from .models import SideEffect


@task()
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task
def noop_bare(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_async(*args: Any, **kwargs: Any) -> None:
    return None


@task()
def add(a: int, b: int) -> int:
    SideEffect.objects.create(kind="framework-add", value=f"{a}+{b}")
    return a + b


@task()
async def add_async(a: int, b: int) -> int:
    return a + b


@task()
def meaning_of_life() -> dict[str, Any]:
    return {"answer": 42, "pair": (1, 2)}


@task()
def fails() -> None:
    SideEffect.objects.create(kind="framework-fails")
    raise ValueError("This task failed due to ValueError")


@task()
def exits() -> None:
    SideEffect.objects.create(kind="framework-exits")
    raise SystemExit(1)


@task()
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task()
def unstorable_return() -> Any:
    return lambda: True


@task(takes_context=True)
def context_id(context: TaskContext) -> dict[str, Any]:
    return {"id": context.task_result.id, "attempt": context.attempt}


@task(takes_context=True)
def fails_first_run(context: TaskContext, key: str) -> int:
    """Fail the first run of ``key``; return the attempt number of any later one."""
    earlier = SideEffect.objects.filter(kind="framework-attempt", value__startswith=f"{key}:")
    ran_before = earlier.exists()
    SideEffect.objects.create(kind="framework-attempt", value=f"{key}:{context.attempt}")
    if not ran_before:
        raise RuntimeError("first run fails")
    return context.attempt


@task()
def record(key: str) -> str:
    SideEffect.objects.create(kind="framework-ran", value=key)
    return key


@task()
def slow_first_run(key: str, first: float, then: float) -> int:
    """Sleep ``first`` seconds on the first run of ``key`` and ``then`` on a later one,
    recording "started" and "finished" SideEffects around the sleep."""
    earlier = SideEffect.objects.filter(kind="framework-started", value=key).count()
    SideEffect.objects.create(kind="framework-started", value=key)
    time.sleep(first if earlier == 0 else then)
    SideEffect.objects.create(kind="framework-finished", value=key)
    return earlier + 1
