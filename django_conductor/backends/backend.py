"""``ConductorBackend``: Django's tasks framework on our executions, worker and admin."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.apps import apps
from django.core import checks
from django.utils import timezone

from .. import payloads
from ..exceptions import PayloadError
from ..options import QUEUE_LENGTH, max_attempts_problem
from . import adapters, results
from .framework import (
    BaseTaskBackend,
    InvalidTask,
    Task,
    TaskResult,
    normalize_json,
    task_enqueued,
)
from .running import handler_for

#: What ``OPTIONS`` may hold, and the default of each.
DEFAULT_OPTIONS: dict[str, Any] = {"max_attempts": 3}


class ConductorBackend(BaseTaskBackend):
    """Stores each enqueued Django task as an execution, in the caller's transaction, for
    ``manage.py conductor_worker`` to run with our leases and retries."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.params = params

    @property
    def max_attempts(self) -> int:
        value: int = self.options.get("max_attempts", DEFAULT_OPTIONS["max_attempts"])
        return value

    def validate_task(self, task: Task[..., Any]) -> None:
        """The framework's rules, ours (a queue name's length, a task name's), and then
        registration: a task that validates can be run by any worker that imports it."""
        super().validate_task(task)
        if len(task.queue_name) > QUEUE_LENGTH:
            raise InvalidTask(
                f"Queue name {task.queue_name!r} is longer than {QUEUE_LENGTH} characters."
            )
        adapters.register(task, handler_for)

    def enqueue(self, task: Task[..., Any], args: Any, kwargs: Any) -> TaskResult[Any]:
        """One execution, written in the caller's transaction: workers see it when that
        commits, and never if it rolls back."""
        self.validate_task(task)
        name = adapters.task_name(task)
        payload: dict[str, Any] = {**arguments(name, args, kwargs), "backend": self.alias}
        if task.run_after is not None:
            payload["run_after"] = aware(task.run_after).isoformat()
        handle = adapters.invoker(name, self.max_attempts).invoke(
            payload,
            priority=task.priority,
            run_at=None if task.run_after is None else aware(task.run_after),
            queue=task.queue_name,
        )
        result = results.build(results.rows(handle.id).first(), handle.id)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        return results.build(results.rows(result_id).first(), result_id)

    async def aget_result(self, result_id: str) -> TaskResult[Any]:
        return results.build(await results.rows(result_id).afirst(), result_id)

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        yield from super().check(**kwargs)
        if not apps.is_installed("django_conductor"):
            yield checks.Error(
                f"The {self.alias!r} task backend is ConductorBackend, but django_conductor "
                "is not an installed app.",
                hint="Add 'django_conductor' to INSTALLED_APPS.",
                id="django_conductor.E101",
            )
        unknown = sorted(set(self.options) - set(DEFAULT_OPTIONS))
        problem = max_attempts_problem(self.max_attempts)
        if unknown or problem:
            yield checks.Error(
                f"The {self.alias!r} task backend's OPTIONS are invalid: "
                + "; ".join([*(f"unknown option {key!r}" for key in unknown), problem or ""]).strip(
                    "; "
                ),
                hint=f"ConductorBackend takes these OPTIONS: {', '.join(DEFAULT_OPTIONS)}.",
                id="django_conductor.E102",
            )
        on_commit = self.params.get("ENQUEUE_ON_COMMIT", True)
        if not isinstance(on_commit, bool):
            yield checks.Error(
                f"The {self.alias!r} task backend's ENQUEUE_ON_COMMIT must be True or False, "
                f"not {on_commit!r}.",
                hint="Leave it out: ConductorBackend writes every task in the caller's "
                "transaction, so workers see it once that commits, either way.",
                id="django_conductor.E103",
            )


def arguments(name: str, args: Any, kwargs: Any) -> dict[str, Any]:
    """The call's arguments as the framework normalises them (tuples as lists, bytes as
    text), or ``PayloadError`` (a ``TypeError``) naming the one that JSON cannot hold."""
    call = {"args": list(args), "kwargs": dict(kwargs)}
    try:
        normalised = normalize_json(call)
        payloads.dumps(normalised)
    except (TypeError, ValueError) as exc:
        why = payloads.explain(call, exc, "the arguments")
        raise PayloadError(f"The arguments for {name!r} are not JSON: {why}") from None
    return normalised  # type: ignore[no-any-return]


def aware(when: datetime) -> datetime:
    """``run_after`` as the database stores it: a naive one (allowed when USE_TZ is off)
    is in the project's time zone."""
    return timezone.make_aware(when) if timezone.is_naive(when) else when
