"""The pages behind an execution's buttons (retry, cancel, run now) and the overview: each
checks the view permission, then the change permission with a visible refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from ..models import Execution
from . import overview
from .display import throughput_chart
from .operations import (
    CANCEL,
    RETRY,
    RUN_NOW,
    Operation,
    Report,
    can_change,
    confirmation,
    refused,
)


def execution_url(execution_id: int, view: str = "change") -> str:
    return reverse(f"admin:django_conductor_execution_{view}", args=[execution_id])


class ExecutionViews:
    """For the executions' ModelAdmin: the extra URLs under ``execution/``."""

    admin_site: Any
    opts: Any
    has_view_permission: Callable[..., bool]
    get_object: Callable[..., Execution | None]

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        name = "django_conductor_execution_"
        return [
            path("overview/", wrap(self.overview_view), name=name + "overview"),
            path("<int:object_id>/retry/", wrap(self.retry_view), name=name + "retry"),
            path("<int:object_id>/cancel/", wrap(self.cancel_view), name=name + "cancel"),
            path("<int:object_id>/run-now/", wrap(self.run_now_view), name=name + "run_now"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def operable(self, request: HttpRequest, object_id: int) -> Execution:
        if not self.has_view_permission(request):
            raise PermissionDenied
        execution = self.get_object(request, str(object_id))
        if execution is None:
            raise Http404(f"No execution with id {object_id}.")
        return execution

    def retry_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self.one(request, object_id, RETRY)

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self.one(request, object_id, CANCEL)

    def one(
        self,
        request: HttpRequest,
        object_id: int,
        operation: Operation,
    ) -> HttpResponse:
        """A button on one execution: GET asks for confirmation, POST with ``post=yes`` acts."""
        execution = self.operable(request, object_id)
        if not can_change(request):
            return refused(request, self.admin_site, operation.verb)
        back = execution_url(execution.pk)
        if request.method == "POST" and request.POST.get("post") == "yes":
            operation.apply(self, request, [execution.pk])
            return redirect(back)
        if not operation.eligible(execution):
            operation.report(self, request, Report(skipped=[execution.pk]))
            return redirect(back)
        return confirmation(
            request,
            self,
            verb=operation.verb,
            eligible=[execution],
            skipped=0,
            hidden=[],
            cancel_url=back,
        )

    def run_now_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        execution = self.operable(request, object_id)
        if not can_change(request):
            return refused(request, self.admin_site, RUN_NOW.verb)
        RUN_NOW.apply(self, request, [execution.pk])
        return redirect(execution_url(execution.pk))

    # -- overview ----------------------------------------------------------------------

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = overview.collect()
        context = {
            **self.admin_site.each_context(request),
            "title": "Overview",
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "overview": data,
            "chart": throughput_chart(data.minutes),
            "finished_last_hour": f"{data.finished_last_hour:,}",
            "changelist_url": reverse("admin:django_conductor_execution_changelist"),
            "task_columns": overview.TASK_COLUMNS,
            "status_cap": f"{overview.STATUS_CAP:,}",
            "completed_cap": f"{overview.COMPLETED_CAP:,}",
            "backlog_cap": f"{overview.BACKLOG_CAP:,}",
        }
        return TemplateResponse(request, "admin/django_conductor/overview.html", context)
