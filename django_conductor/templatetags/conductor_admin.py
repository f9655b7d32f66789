"""Template filters for the admin pages: the same badges and times as the list columns."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils.safestring import SafeString

from ..admin import display as admin_display
from ..models import Execution

register = template.Library()


@register.filter
def status_badge(execution: Execution) -> SafeString:
    return admin_display.status_badge(execution)


@register.filter
def when(moment: datetime | None) -> SafeString | str:
    return admin_display.when(moment)


@register.filter
def duration(value: Execution | timedelta | None) -> str:
    if isinstance(value, Execution):
        return admin_display.execution_duration(value)
    return admin_display.humanize_duration(value)


@register.filter
def short_json(value: Any) -> str:
    return admin_display.short_json(value)


@register.filter
def pretty_json(value: Any) -> SafeString:
    return admin_display.pretty_json(value)


@register.filter
def first_line(text: str) -> str:
    return admin_display.first_line(text or "")
