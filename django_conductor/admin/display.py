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

from ..models import Execution, Status


def exact(moment: datetime) -> str:
    """Date, time to the second and zone: what every time in the admin shows on hover."""
    return date_format(timezone.localtime(moment), "Y-m-d H:i:s T")


def relative(moment: datetime, now: datetime | None = None) -> str:
    """``3 min 5 s ago``, ``20 min ago``, ``in 20 h``: during an incident, how long ago matters
    more than when. Two units while the first is under ten, one after."""
    seconds = (moment - (now or timezone.now())).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "just now"
    span = f"{int(size)} s" if size < 10 else humanize_duration(timedelta(seconds=size))
    number, unit, *_ = span.split()
    if int(number) >= 10:  # "20 min ago": the seconds on top say nothing more at a glance
        span = f"{number} {unit}"
    return f"{span} ago" if seconds < 0 else f"in {span}"


def when(moment: datetime | None, now: datetime | None = None) -> SafeString | str:
    """Every time in the admin, in one format: relative to now, the exact one on hover."""
    if moment is None:
        return "—"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        exact(moment),
        relative(moment, now),
    )


def offset(moment: datetime, start: datetime) -> SafeString:
    """A time within one execution, counted from its invoke (``+1.7 s``), exact on hover."""
    return format_html(
        '<time datetime="{}" title="{}">+{}</time>',
        moment.isoformat(),
        exact(moment),
        humanize_duration(moment - start),
    )


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


def _waits_for_run_at(execution: Execution, now: datetime) -> bool:
    return execution.status == Status.SLEEPING or (
        execution.status == Status.PENDING
        and execution.run_at is not None
        and execution.run_at > now
    )


def status_label(execution: Execution, now: datetime | None = None) -> str:
    """The words on the badge, short enough for a list column; the time is in ``run at``."""
    now = now or timezone.now()
    status = execution.status
    if status == Status.WAITING:
        return "waiting on child"
    if status == Status.RUNNING and execution.cancel_requested_at:
        return "cancelling"
    if status == Status.PENDING and _waits_for_run_at(execution, now):
        return "pending, backoff" if execution.attempts else "pending, delayed"
    return str(status)


def status_note(execution: Execution, now: datetime | None = None) -> str:
    """What a parked or delayed execution waits for, in words: ``wakes in 5 h``."""
    now = now or timezone.now()
    if execution.run_at is None or not _waits_for_run_at(execution, now):
        return ""
    if execution.status == Status.SLEEPING:
        verb = "wakes"
    else:
        verb = "retries" if execution.attempts else "due"
    return f"{verb} {relative(execution.run_at, now)}"


def status_badge(execution: Execution, now: datetime | None = None) -> SafeString:
    note = status_note(execution, now)
    title = Status(execution.status).label
    if note and execution.run_at is not None:
        title = f"{title}, {note.split()[0]} {exact(execution.run_at)}"
    return format_html(
        '<span class="cd-badge cd-{}" title="{}">{}</span>',
        execution.status,
        title,
        status_label(execution, now),
    )


def attempts_used(execution: Execution) -> str:
    """``0 of 3 used``, and why an execution that ran may have used none."""
    text = f"{execution.attempts} of {execution.max_attempts} used"
    runs = execution.claims
    if execution.status == Status.RUNNING and execution.prefetched:
        text += " — claimed ahead of a free thread: this run uses one when it ends"
    elif runs > execution.attempts:
        plural = "run" if runs == 1 else "runs"
        text += (
            f" — {runs} {plural} so far; runs that parked (for a sleep, a child or a "
            "shutdown) and runs before a retry do not count"
        )
    return text


def error_block(execution: Execution) -> SafeString | str:
    """The error, in red while it is why the execution ended; folded away once it is only
    an earlier attempt's, which a later run got past."""
    if not execution.error:
        return "—"
    if execution.status in (Status.FAILED, Status.CANCELLED):
        return format_html('<pre class="cd-error-text">{}</pre>', execution.error)
    return format_html(
        '<details class="cd-more cd-earlier"><summary>From an earlier attempt, retried since: '
        '{}</summary><pre class="cd-earlier-text">{}</pre></details>',
        first_line(execution.error),
        execution.error,
    )


def plain_badge(tone: str, text: str | None = None) -> SafeString:
    """A badge for something that is no status, in the colour of the status ``tone`` names."""
    return format_html('<span class="cd-badge cd-{}">{}</span>', tone, text or tone)


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
#: One stack per bar, from the bottom: the statuses a finished execution ends in.
SERIES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


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
