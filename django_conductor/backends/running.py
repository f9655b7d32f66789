"""How the worker runs one attempt of a Django task: its function called with the stored
arguments (and a ``TaskContext`` when it takes one), the framework's signals sent around it.

A Django task has no steps, so every attempt runs it whole: a retry, or a worker's crash,
runs all of it again. Its side effects must bear that, as they must under any retrying
backend; durable steps are what our own ``@task`` adds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from .. import payloads
from ..exceptions import ConductorError, NonRetryableError
from ..models import Execution
from ..replay import Event
from . import adapters, results
from .framework import (
    TaskContext,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_finished,
    task_started,
)


class TaskExited(RuntimeError):
    """The task raised an exception meant to stop the process (``SystemExit``,
    ``KeyboardInterrupt``); the worker goes on and the attempt fails."""


def handler_for(name: str) -> Callable[..., Any]:
    """The conductor handler registered for the Django task called ``name``."""

    def run_django_task(event: Event, ctx: Any) -> Any:
        return run(name, event, ctx)

    run_django_task.__qualname__ = f"run_django_task[{name}]"
    return run_django_task


def run(name: str, event: Event, ctx: Any) -> Any:
    """One attempt; its return value as the framework stores it (JSON-normalised)."""
    django_task = adapters.django_task(name)
    if django_task is None:  # registered names always have one; a guard for the types
        raise ConductorError(f"No Django task is registered as {name!r}.")
    row = results.rows(event.execution_id).first()
    started = results.build(row, event.execution_id)
    # This attempt is counted by now, whether or not the row's count shows it yet.
    workers = [""] * (event.attempt - 1) + [(row["lease_owner"] or "") if row else ""]
    started = dataclasses.replace(
        started,
        status=TaskResultStatus.RUNNING,
        last_attempted_at=timezone.now(),
        worker_ids=workers,
    )
    sender = type(task_backends[started.backend])
    task_started.send(sender=sender, task_result=started)
    task = started.task
    args = ([TaskContext(task_result=started)] if task.takes_context else []) + started.args
    try:
        value = task.call(*args, **started.kwargs)
    except Exception as exc:
        if final(exc, event):
            finished(sender, started, TaskResultStatus.FAILED)
        raise
    except BaseException as exc:
        failure = TaskExited(f"The task raised {type(exc).__name__}({exc}); the worker went on.")
        if final(failure, event):
            finished(sender, started, TaskResultStatus.FAILED)
        raise failure from exc
    try:
        value = storable(value)
    except NonRetryableError:
        finished(sender, started, TaskResultStatus.FAILED)
        raise
    finished(sender, started, TaskResultStatus.SUCCESSFUL, value)
    return value


def storable(value: Any) -> Any:
    """The value as the framework normalises it (tuples as lists, bytes as text), or
    ``NonRetryableError`` saying why it cannot be stored: running the task again would
    repeat its work and return the same."""
    try:
        value = normalize_json(value)
        payloads.dumps(value)
    except (TypeError, ValueError) as exc:
        why = payloads.explain(value, exc, "the return value")
        raise NonRetryableError(f"The task returned a value that cannot be stored: {why}") from exc
    return value


def final(exc: BaseException, event: Event) -> bool:
    """Whether this attempt's failure ends the execution (the worker decides the same)."""
    if isinstance(exc, NonRetryableError):
        return True
    budget = Execution.objects.filter(pk=event.execution_id).values_list("max_attempts").first()
    return budget is None or event.attempt >= budget[0]


def finished(
    sender: type, started: TaskResult[Any], status: TaskResultStatus, value: Any = None
) -> None:
    result = dataclasses.replace(started, status=status, finished_at=timezone.now())
    object.__setattr__(result, "_return_value", value)
    task_finished.send(sender=sender, task_result=result)
