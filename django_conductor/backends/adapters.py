"""Each Django task becomes a conductor task of its own, named by its module path and
registered the moment the backend validates it (when its module is imported): a worker claims
only the Django tasks its code defines, and nothing from the database is ever imported."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..definition import Task as ConductorTask
from ..options import NAME_LENGTH
from ..registry import registry
from .framework import InvalidTask, Task

#: The Django task behind each registered name, the one its module last defined.
_django_tasks: dict[str, Task[..., Any]] = {}
#: The handler registered for each name: one function per name, whatever redefines it.
_handlers: dict[str, Callable[..., Any]] = {}


def task_name(django_task: Task[..., Any]) -> str:
    """The stable name a Django task's executions carry: its function's module path."""
    return django_task.module_path


def register(django_task: Task[..., Any], handler_for: Callable[[str], Callable[..., Any]]) -> str:
    """Make ``django_task`` runnable by name; its name, or ``InvalidTask`` saying why not."""
    name = task_name(django_task)
    if len(name) > NAME_LENGTH:
        raise InvalidTask(
            f"The task's module path {name!r} is longer than {NAME_LENGTH} characters, the "
            "most a task name may have: move the function to a shorter module path."
        )
    existing = registry.tasks.get(name)
    if existing is not None and existing.func is not _handlers.get(name):
        raise InvalidTask(
            f"A conductor @task is already registered as {name!r}, the name this Django task "
            "would run under: rename one of them."
        )
    _django_tasks[name] = django_task
    if existing is None:
        handler = _handlers.setdefault(name, handler_for(name))
        registry.register(ConductorTask(handler, name))
    return name


def django_task(name: str) -> Task[..., Any] | None:
    """The Django task registered as ``name``; None for a conductor task or an unknown one."""
    return _django_tasks.get(name)


def invoker(name: str, max_attempts: int) -> ConductorTask:
    """What a backend enqueues ``name`` through: the registered task with the backend's
    attempt budget (an execution keeps its own, so each backend alias may set one)."""
    return ConductorTask(_handlers[name], name, max_attempts=max_attempts)
