"""How the admin shows an execution's state: status badges, durations, times and JSON.

Everything here works from the row alone, so a list of a hundred rows costs no query."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .models import Execution, Status


def when(moment: datetime | None) -> str:
    """A local time, short when it is today: the admin is read in the middle of an incident."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    if local.date() == timezone.localdate():
        return date_format(local, "H:i:s")
    return date_format(local, "M j, H:i")


def precise(moment: datetime | None) -> str:
    """Date, time to the second and zone, for one execution's page."""
    if moment is None:
        return "—"
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s T")


def humanize_duration(delta: timedelta | None) -> str:
    """``0.42 s``, ``3 min 5 s``, ``2 h 10 min``, ``1 d 3 h``: two units at most."""
    if delta is None:
        return "—"
    total = delta.total_seconds()
    if total < 0:
        total = 0.0
    if total < 10:
        return f"{total:.2f} s" if total < 1 else f"{total:.1f} s"
    units = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))
    rest = int(total)
    for index, (label, size) in enumerate(units):
        if rest >= size:
            parts = [f"{rest // size} {label}"]
            if index + 1 < len(units):
                smaller, small_size = units[index + 1]
                if rest % size >= small_size:
                    parts.append(f"{rest % size // small_size} {smaller}")
            break
    return " ".join(parts)


def status_label(execution: Execution, now: datetime | None = None) -> str:
    """The words on the badge: a parked execution says what it waits for."""
    now = now or timezone.now()
    status = execution.status
    if status == Status.SLEEPING:
        return f"sleeping until {when(execution.run_at)}"
    if status == Status.WAITING:
        return "waiting on child"
    if status == Status.RUNNING and execution.cancel_requested_at:
        return "cancelling"
    if status == Status.PENDING and execution.run_at and execution.run_at > now:
        reason = "retry" if execution.attempts else "due"
        return f"pending, {reason} at {when(execution.run_at)}"
    return str(status)


def status_badge(execution: Execution, now: datetime | None = None) -> SafeString:
    return format_html(
        '<span class="cd-badge cd-{}" title="{}">{}</span>',
        execution.status,
        Status(execution.status).label,
        status_label(execution, now),
    )


def plain_badge(status: str, text: str | None = None) -> SafeString:
    return format_html('<span class="cd-badge cd-{}">{}</span>', status, text or status)


def execution_duration(execution: Execution, now: datetime | None = None) -> str:
    """Finished: how long it took from first claim to end; running: how long so far."""
    if execution.started_at is None:
        return "—"
    if execution.finished_at is not None:
        return humanize_duration(execution.finished_at - execution.started_at)
    if execution.status == Status.RUNNING:
        return f"{humanize_duration((now or timezone.now()) - execution.started_at)} so far"
    return "—"


def pretty_json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="cd-json">{}</pre>', text)


def short_json(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


#: The throughput chart's drawing box (SVG user units); bars scale to the busiest minute.
CHART_WIDTH, CHART_HEIGHT = 900, 120
SERIES = ("completed", "failed", "cancelled")


def throughput_chart(minutes: list[Any]) -> dict[str, Any]:
    """Stacked bars, one per minute, oldest first, as coordinates for an inline SVG."""
    slot = CHART_WIDTH / max(len(minutes), 1)
    peak = max((minute.total for minute in minutes), default=0)
    scale = (CHART_HEIGHT - 4) / peak if peak else 0.0
    bars = []
    for index, minute in enumerate(minutes):
        top = float(CHART_HEIGHT)
        rects = []
        for series in SERIES:
            count = getattr(minute, series)
            if count:
                height = max(1.0, count * scale)
                top -= height
                rects.append(
                    {"css": f"cd-bar-{series}", "y": round(top, 2), "height": round(height, 2)}
                )
        parts = [f"{getattr(minute, s)} {s}" for s in SERIES if getattr(minute, s)]
        ago = "this minute" if minute.ago == 0 else f"{minute.ago} min ago"
        bars.append(
            {
                "x": round(index * slot + 1, 2),
                "width": round(slot - 2, 2),
                "rects": rects,
                "title": f"{ago}: {', '.join(parts) or 'nothing finished'}",
            }
        )
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "peak": peak}
