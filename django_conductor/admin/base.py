"""The base of the conductor's model admins: read-only pages, operations gated on the
change permission with a visible refusal, and list actions that ask before they act."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import flatten_fieldsets
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from ..models import Execution
from .changelist import UncountedListMixin
from .operations import Operation, Report, can_change, confirmation, refused

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Any]
else:
    ModelAdmin = admin.ModelAdmin

#: List actions that change executions, and the verb a refusal names.
ACTION_VERBS = {
    "retry_selected": "retry",
    "cancel_selected": "cancel",
    "run_now_selected": "run now",
}


class ReadOnlyAdmin(UncountedListMixin, ModelAdmin):
    """Viewing needs the view permission; operating needs the change permission, which is
    checked by the operations themselves because the edit form never exists."""

    list_per_page = 100
    empty_value_display = "—"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return flatten_fieldsets(self.fieldsets or ())

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return can_change(request)

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj: Any) -> SafeString:
        """The stock checkbox renders a form widget template per row: a third of the page's
        time for a hundred rows. Same markup, written directly."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" '
            'aria-label="Select this object for an action - {}">',
            ACTION_CHECKBOX_NAME,
            obj.pk,
            obj,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action in ACTION_VERBS and self.has_view_permission(request) and not can_change(request):
            return refused(request, self.admin_site, ACTION_VERBS[action])
        title = str(self.opts.verbose_name_plural).capitalize()
        context = {"title": title, **(extra_context or {})}
        return super().changelist_view(request, context)

    def confirm_or_run(
        self,
        request: HttpRequest,
        executions: list[Execution],
        *,
        selected: list[Any],
        operation: Operation,
        action: str,
    ) -> TemplateResponse | None:
        """The list actions: a confirmation page first, the change once it says yes."""
        ids = [execution.pk for execution in executions]
        eligible = [execution for execution in executions if operation.eligible(execution)]
        if not eligible:
            operation.report(self, request, Report(skipped=ids))
            return None
        if request.POST.get("post") == "yes":
            operation.apply(self, request, ids)
            return None
        hidden = [("action", action), *((ACTION_CHECKBOX_NAME, row.pk) for row in selected)]
        return confirmation(
            request,
            self,
            verb=operation.verb,
            eligible=eligible,
            skipped=len(ids) - len(eligible),
            hidden=hidden,
            cancel_url=request.get_full_path(),
        )
