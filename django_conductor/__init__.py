"""django_conductor: durable execution for Django on PostgreSQL alone."""

from .api import cancel, invoke, retry, run_now
from .context import Context, Event
from .definition import Task, task
from .exceptions import (
    ChildExecutionFailed,
    ChildExecutionTimeout,
    ConductorError,
    DuplicateStepName,
    ExecutionCancelled,
    ExecutionFailed,
    NonRetryableError,
    PayloadError,
    StepResultError,
    TablesMissing,
    TransactionNotAllowed,
    UnknownTask,
)
from .handle import ExecutionHandle

__all__ = [
    "ChildExecutionFailed",
    "ChildExecutionTimeout",
    "ConductorError",
    "Context",
    "DuplicateStepName",
    "Event",
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
    "invoke",
    "retry",
    "run_now",
    "task",
]
