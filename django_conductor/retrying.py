"""Retrying a failed or cancelled execution: back to pending with a fresh attempt budget,
its completed steps and the child outcomes it survived kept. A state change of the models',
which finds the model through the app registry when it runs, so that
``FailedExecution.retry()`` and ``django_conductor.retry()`` share it, and the public API
imports without Django set up (a task module may be imported first)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.db.models.functions import Now

from .event_waits import timeout_error
from .exceptions import child_error
from .statuses import Status
from .store.notify import notify_ready
from .store.trees import ANY_STATUS, lock_tree

if TYPE_CHECKING:
    from .models import Execution, ExecutionManager


def retry_execution(execution_id: int) -> bool:
    """Retry ``execution_id`` (see ``django_conductor.retry``); False when it is not failed
    or cancelled."""
    executions = cast("ExecutionManager[Execution]", execution_model().objects)
    with transaction.atomic(), connection.cursor() as cursor:
        lock_tree(cursor, execution_id, ANY_STATUS)  # the one lock order, before any change
        return _retry_locked(executions, execution_id)


def execution_model() -> Any:
    return apps.get_model("django_conductor", "Execution")


def _restart(steps: Any) -> None:
    """Open a finished invoke or event wait again, its timeout the same length from now."""
    steps.update(
        error="",
        finished_at=None,
        result=None,
        started_at=Now(),
        wake_at=ExpressionWrapper(
            Now() + (F("wake_at") - F("started_at")), output_field=DateTimeField()
        ),
    )


def _retry_locked(executions: ExecutionManager[Execution], execution_id: int) -> bool:
    execution = executions.filter(
        pk=execution_id, status__in=(Status.FAILED, Status.CANCELLED)
    ).first()
    if execution is None:
        return False
    key_taken = (
        execution.dedupe_key is not None
        and executions.live()
        .filter(
            task_name=execution.task_name,
            queue=execution.queue,
            dedupe_key=execution.dedupe_key,
            superseded=False,
        )
        .exists()
    )
    executions.filter(pk=execution.pk).update(
        superseded=execution.superseded or key_taken,
        status=Status.PENDING,
        attempts=0,
        run_at=Now(),
        error="",
        finished_at=None,
        cancel_requested_at=None,
        lease_owner=None,
        lease_expires_at=None,
    )
    execution.failures.filter(retried_at__isnull=True).update(retried_at=Now())
    invokes = execution.steps.filter(kind="invoke", child__isnull=False)
    # Children it was waiting on (a cancel took them with it) start again; it waits anew.
    child_ids = list(invokes.filter(finished_at__isnull=True).values_list("child_id", flat=True))
    failed = invokes.filter(finished_at__isnull=False).exclude(error="").order_by("-id").first()
    if failed is not None and execution.error in {
        str(child_error(failed.name, failed.error, failed.wake_at, among=among))
        for among in (False, True)
    }:
        # The last child failure, and the very error the execution failed with: it did not
        # survive it. A child timeout starts afresh: the same length of time from now.
        _restart(execution.steps.filter(pk=failed.pk))
        child_ids.append(failed.child_id)  # type: ignore[arg-type]  # child__isnull=False
    timed_out = (
        execution.steps.filter(kind="event", finished_at__isnull=False)
        .exclude(error="")
        .order_by("-id")
        .first()
    )
    if timed_out is not None and execution.error == str(
        timeout_error(timed_out.name, timed_out.wake_at)
    ):
        _restart(execution.steps.filter(pk=timed_out.pk))  # it waits for the event anew
    for child_id in child_ids:  # the parent's tree lock covers them
        _retry_locked(executions, child_id)
    with connection.cursor() as cursor:
        notify_ready(cursor, [execution.queue])
    return True
