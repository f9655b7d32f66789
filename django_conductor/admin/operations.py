"""Retry, cancel and run-now over many executions, with the report a person needs: how many
were done, and why the others were skipped. Shared by the list actions and the buttons."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import ngettext

from .. import api
from ..models import FINISHED, LIVE, Execution, Status

CHANGE_PERMISSION = "django_conductor.change_execution"


def can_change(request: HttpRequest) -> bool:
    return request.user.has_perm(CHANGE_PERMISSION)


def refused(request: HttpRequest, admin_site: Any, verb: str) -> TemplateResponse:
    """A visible 403 instead of an action that quietly does nothing."""
    context = {
        **admin_site.each_context(request),
        "title": "Permission needed",
        "verb": verb,
    }
    return TemplateResponse(request, "admin/django_conductor/refused.html", context, status=403)


@dataclass
class Report:
    done: list[int] = field(default_factory=list)
    asked: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)


def retryable(execution: Execution) -> bool:
    return execution.status in (Status.FAILED, Status.CANCELLED)


def cancellable(execution: Execution) -> bool:
    return execution.status in LIVE


def runnable_now(execution: Execution) -> bool:
    return (
        execution.status == Status.PENDING
        and execution.run_at is not None
        and execution.run_at > timezone.now()
    )


def retry_many(ids: Iterable[int]) -> Report:
    report = Report()
    for execution_id in sorted(set(ids)):
        (report.done if api.retry(execution_id) else report.skipped).append(execution_id)
    return report


def cancel_many(ids: Iterable[int]) -> Report:
    """Parked ones are cancelled at once; running ones are asked to stop at their next step."""
    report = Report()
    statuses = dict(Execution.objects.filter(pk__in=set(ids)).values_list("id", "status"))
    for execution_id in sorted(statuses):
        if statuses[execution_id] in FINISHED or not api.cancel(
            execution_id, "Cancelled from the admin"
        ):
            report.skipped.append(execution_id)
        elif statuses[execution_id] == Status.RUNNING:
            report.asked.append(execution_id)
        else:
            report.done.append(execution_id)
    return report


def run_now_many(ids: Iterable[int]) -> Report:
    report = Report()
    for execution_id in sorted(set(ids)):
        (report.done if api.run_now(execution_id) else report.skipped).append(execution_id)
    return report


#: A message: which ids of the report it counts, singular, plural, level.
Message = tuple[str, str, str, int]


@dataclass(frozen=True)
class Operation:
    """What a list action or a button does to executions, which ones it applies to, and
    how it tells the person what it did and what it skipped."""

    verb: str
    run: Callable[[Iterable[int]], Report]
    eligible: Callable[[Execution], bool]
    messages: tuple[Message, ...]
    #: The admin history's change message for each part of the report that changed something.
    history: tuple[tuple[str, str], ...]

    def apply(self, model_admin: Any, request: HttpRequest, ids: Iterable[int]) -> None:
        """Run it, leave a trace in the admin's history, and tell the person what it did."""
        report = self.run(ids)
        self.record(request, report)
        self.report(model_admin, request, report)

    def record(self, request: HttpRequest, report: Report) -> None:
        """One LogEntry per execution changed: its History page and Recent actions show who
        did what, and when."""
        for part, message in self.history:
            ids = getattr(report, part)
            if ids:
                LogEntry.objects.log_actions(
                    cast(int, request.user.pk),  # operations need a logged-in user
                    Execution.objects.filter(pk__in=ids).only("task_name", "status").order_by("id"),
                    CHANGE,
                    change_message=message,
                )

    def report(self, model_admin: Any, request: HttpRequest, report: Report) -> None:
        for part, singular, plural, level in self.messages:
            ids = getattr(report, part)
            if ids:
                text = ngettext(singular, plural, len(ids)) % {"count": len(ids)}
                model_admin.message_user(request, text, level)


RETRY = Operation(
    "retry",
    retry_many,
    retryable,
    (
        (
            "done",
            "Retried %(count)d execution; its completed steps are kept.",
            "Retried %(count)d executions; their completed steps are kept.",
            messages.SUCCESS,
        ),
        (
            "skipped",
            "Skipped %(count)d execution that is not failed or cancelled; "
            "only those can be retried.",
            "Skipped %(count)d executions that are not failed or cancelled; "
            "only those can be retried.",
            messages.WARNING,
        ),
    ),
    (("done", "Retried (completed steps kept)"),),
)
CANCEL = Operation(
    "cancel",
    cancel_many,
    cancellable,
    (
        (
            "done",
            "Cancelled %(count)d execution.",
            "Cancelled %(count)d executions.",
            messages.SUCCESS,
        ),
        (
            "asked",
            "Asked %(count)d running execution to stop at its next step.",
            "Asked %(count)d running executions to stop at their next step.",
            messages.SUCCESS,
        ),
        (
            "skipped",
            "Skipped %(count)d execution that had already finished.",
            "Skipped %(count)d executions that had already finished.",
            messages.WARNING,
        ),
    ),
    (("done", "Cancelled"), ("asked", "Cancel requested (it stops at its next step)")),
)
RUN_NOW = Operation(
    "run now",
    run_now_many,
    runnable_now,
    (
        (
            "done",
            "%(count)d execution will run now instead of waiting.",
            "%(count)d executions will run now instead of waiting.",
            messages.SUCCESS,
        ),
        (
            "skipped",
            "Skipped %(count)d execution that is not pending with a later run time; "
            "only one waiting out a retry backoff or a delay can run now.",
            "Skipped %(count)d executions that are not pending with a later run time; "
            "only those waiting out a retry backoff or a delay can run now.",
            messages.WARNING,
        ),
    ),
    (("done", "Retried now (backoff or delay skipped)"),),
)


#: What each confirmation page says before anything changes.
NOTES = {
    "retry": (
        "Each goes back to pending with a fresh attempt budget. Completed steps are kept: "
        "their recorded results are replayed and they do not run again, so side effects "
        "already done (a charge, an email) are not repeated. Failed child executions are "
        "retried with their parent."
    ),
    "cancel": (
        "Pending, sleeping and waiting executions are cancelled at once, together with their "
        "unfinished children. A running one stops at its next step or checkpoint. Completed "
        "steps stay recorded; a cancelled execution can be retried later."
    ),
}


def confirmation(
    request: HttpRequest,
    model_admin: Any,
    *,
    verb: str,
    eligible: list[Execution],
    skipped: int,
    hidden: list[tuple[str, Any]],
    cancel_url: str,
) -> TemplateResponse:
    """The page between the button and the change, posting back with ``post=yes``."""
    opts = model_admin.model._meta
    noun = ngettext("execution", "executions", len(eligible))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{verb.capitalize()} {len(eligible)} {noun}?",
        "verb": verb,
        "note": NOTES[verb],
        "eligible": eligible,
        "skipped": skipped,
        "hidden": hidden,
        "cancel_url": cancel_url,
        "opts": opts,
        "app_label": opts.app_label,
    }
    return TemplateResponse(request, "admin/django_conductor/confirm.html", context)
