"""django_conductor: durable execution for Django on PostgreSQL alone.

The public names below are imported on first use (PEP 562), not with the package, which
Django imports to read its app config: the package itself stays as light as an app's must
be. Every one of them imports before Django is set up, so a task module may be imported
first (tests/test_structure.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exports import on_first_use

if TYPE_CHECKING:
    from .api import (
        cancel,
        invoke,
        retry,
        run_now,
    )
    from .context import (
        Context,
    )
    from .definition import (
        Task,
        task,
    )
    from .exceptions import (
        ChildExecutionFailed,
        ChildExecutionTimeout,
        ConductorError,
        DuplicateStepName,
        EventTimeout,
        ExecutionCancelled,
        ExecutionFailed,
        NonRetryableError,
        PayloadError,
        StepResultError,
        TablesMissing,
        TransactionNotAllowed,
        UnknownTask,
    )
    from .handle import (
        ExecutionHandle,
    )
    from .replay import (
        Event,
    )
    from .triggers.cron import cron
    from .triggers.events import emit, on_event
    from .triggers.rows import on_model
    from .triggers.schedules import schedule, unschedule

#: Where each public name lives.
_HOMES = {
    "cancel": "api",
    "invoke": "api",
    "retry": "api",
    "run_now": "api",
    "Context": "context",
    "Event": "replay",
    "Task": "definition",
    "task": "definition",
    "ChildExecutionFailed": "exceptions",
    "ChildExecutionTimeout": "exceptions",
    "ConductorError": "exceptions",
    "DuplicateStepName": "exceptions",
    "EventTimeout": "exceptions",
    "ExecutionCancelled": "exceptions",
    "ExecutionFailed": "exceptions",
    "NonRetryableError": "exceptions",
    "PayloadError": "exceptions",
    "StepResultError": "exceptions",
    "TablesMissing": "exceptions",
    "TransactionNotAllowed": "exceptions",
    "UnknownTask": "exceptions",
    "ExecutionHandle": "handle",
    "cron": "triggers.cron",
    "emit": "triggers.events",
    "on_event": "triggers.events",
    "on_model": "triggers.rows",
    "schedule": "triggers.schedules",
    "unschedule": "triggers.schedules",
}

__all__ = [
    "ChildExecutionFailed",
    "ChildExecutionTimeout",
    "ConductorError",
    "Context",
    "DuplicateStepName",
    "Event",
    "EventTimeout",
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionHandle",
    "NonRetryableError",
    "PayloadError",
    "StepResultError",
    "TablesMissing",
    "Task",
    "TransactionNotAllowed",
    "UnknownTask",
    "cancel",
    "cron",
    "emit",
    "invoke",
    "on_event",
    "on_model",
    "retry",
    "run_now",
    "schedule",
    "task",
    "unschedule",
]


__getattr__, __dir__ = on_first_use(__name__, _HOMES, globals())
