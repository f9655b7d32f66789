"""An execution of a Django task as the framework's ``TaskResult``: its status mapped, its
failures as ``TaskError``s, its arguments and return value from the row."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import OuterRef, QuerySet
from django.db.models.functions import JSONObject

from ..exceptions import ExecutionCancelled, ExecutionFailed
from ..models import Execution, FailedExecution
from ..statuses import Status
from . import adapters
from .framework import (
    InvalidTask,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
)

#: Our statuses as the framework's: it has no sleeping, waiting or cancelled. A Django task
#: never sleeps or waits (it has no ``ctx``), and a cancelled one did not succeed.
STATUSES = {
    Status.PENDING: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.SLEEPING: TaskResultStatus.RUNNING,
    Status.WAITING: TaskResultStatus.RUNNING,
    Status.COMPLETED: TaskResultStatus.SUCCESSFUL,
    Status.FAILED: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}

FIELDS = (
    "id",
    "task_name",
    "queue",
    "priority",
    "payload",
    "status",
    "attempts",
    "lease_owner",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
)

TRACEBACK_START = "Traceback (most recent call last):"


def execution_id(result_id: object) -> int:
    """The execution a result id names, or ``TaskResultDoesNotExist``."""
    text = str(result_id)
    if not text.isascii() or not text.isdigit() or int(text) > 2**63 - 1:
        raise TaskResultDoesNotExist(result_id)
    return int(text)


def rows(result_id: object) -> QuerySet[Execution, dict[str, Any]]:
    """The execution and its failure records, in one query."""
    failures = (
        FailedExecution.objects.filter(execution=OuterRef("pk"))
        .order_by("failed_at", "id")
        .values(record=JSONObject(error="error", traceback="traceback"))
    )
    found: QuerySet[Execution, dict[str, Any]] = (
        Execution.objects.filter(pk=execution_id(result_id))
        .annotate(failure_records=ArraySubquery(failures))
        .values(*FIELDS, "failure_records")
    )
    return found


def build(row: dict[str, Any] | None, result_id: object) -> TaskResult[Any]:
    """The framework's result for ``row``; ``TaskResultDoesNotExist`` when there is none or
    it is not a Django task's."""
    if row is None:
        raise TaskResultDoesNotExist(result_id)
    django_task = adapters.django_task(row["task_name"])
    payload = row["payload"]
    if django_task is None or not stored_call(payload):
        raise TaskResultDoesNotExist(
            f"{result_id}: execution {row['id']} is not one of a Django task registered in "
            "this process (is the module that defines the task imported?)"
        )
    try:
        task = dataclasses.replace(
            django_task,
            priority=row["priority"],
            queue_name=row["queue"],
            backend=payload["backend"],
            run_after=_parsed(payload.get("run_after")),
        )
    except InvalidTask as invalid:
        raise TaskResultDoesNotExist(f"{result_id}: {invalid}") from invalid
    status = STATUSES[row["status"]]
    attempts = row["attempts"]
    workers = [""] * attempts
    if row["status"] == Status.RUNNING and row["lease_owner"] and workers:
        workers[-1] = row["lease_owner"]
    result: TaskResult[Any] = TaskResult(
        task=task,
        id=str(row["id"]),
        status=status,
        enqueued_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        last_attempted_at=row["started_at"],
        args=payload["args"],
        kwargs=payload["kwargs"],
        backend=payload["backend"],
        errors=errors(row),
        worker_ids=workers,
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", row["result"])
    return result


def stored_call(payload: object) -> bool:
    """Whether ``payload`` is what the backend stores: arguments and the backend's alias."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get("args"), list)
        and isinstance(payload.get("kwargs"), dict)
        and isinstance(payload.get("backend"), str)
    )


def errors(row: dict[str, Any]) -> list[TaskError]:
    """One per time it failed for good (a retry from the admin may add more), oldest
    first; a cancelled execution's reason last."""
    found = [
        TaskError(
            exception_class_path=raised_class(failure["traceback"]) or _path(ExecutionFailed),
            traceback=failure["traceback"] or failure["error"],
        )
        for failure in row["failure_records"] or []
    ]
    if row["status"] == Status.FAILED and not found:
        found.append(TaskError(exception_class_path=_path(ExecutionFailed), traceback=row["error"]))
    if row["status"] == Status.CANCELLED:
        found.append(
            TaskError(exception_class_path=_path(ExecutionCancelled), traceback=row["error"])
        )
    return found


def raised_class(traceback: str) -> str | None:
    """The dotted path of the exception a formatted traceback ends with: the first line of
    its last exception that is not indented. Python leaves ``builtins.`` out."""
    lines = traceback.splitlines()
    starts = [n for n, line in enumerate(lines) if line == TRACEBACK_START]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if line and not line[0].isspace():
            head = line.split(":", 1)[0].strip()
            if not all(part.isidentifier() for part in head.split(".")):
                return None
            return head if "." in head else f"builtins.{head}"
    return None


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _parsed(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
