"""An execution's steps laid out on one time axis, so that the time spent parked (sleeping,
waiting on a child, queued) shows as what it is: gaps between short bursts of work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Execution, Step, StepKind
from .display import first_line, humanize_duration, offset, relative, when

#: A bar never gets thinner than this (percent of the axis), so instant steps stay visible.
MIN_WIDTH = 0.6
#: Steps drawn on one page; an execution with more gets a note instead of a huge page.
STEP_LIMIT = 500


@dataclass(frozen=True)
class Bar:
    left: float
    width: float
    css: str
    label: str
    step: Step | None = None
    at: SafeString | str = ""
    #: For a sleep: when it wakes, or woke.
    wake: SafeString | str = ""

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def failed(self) -> bool:
        return bool(self.step and self.step.error)

    @property
    def title(self) -> str:
        """The bar's tooltip: what the step did, and for one that raised, its error."""
        if self.step is None:
            return self.label
        text = f"{self.step.name}: {self.label}"
        return f"{text}: {first_line(self.step.error)}" if self.failed else text


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    queued: Bar
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    now_at: float | None
    truncated: bool


def build(execution: Execution, steps: list[Step], *, truncated: bool = False) -> Timeline:
    """Lay ``steps`` (ordered by start) out between the execution's creation and its end."""
    now = timezone.now()
    live = execution.finished_at is None
    spans = [_span(step, now) for step in steps]
    start = min([execution.created_at, *(begin for begin, _ in spans)])
    ends = [execution.finished_at or now, *(end for _, end in spans)]
    if live:
        ends.append(now)
    end = max(ends)
    total = max((end - start).total_seconds(), 0.001)

    def place(begin: datetime, finish: datetime) -> tuple[float, float]:
        left = max(0.0, (begin - start).total_seconds() / total * 100)
        width = max(MIN_WIDTH, (finish - begin).total_seconds() / total * 100)
        left = min(left, 100 - MIN_WIDTH)
        return round(left, 3), round(min(width, 100 - left), 3)

    queued_until = execution.started_at or now
    left, width = place(start, queued_until)
    queued = Bar(left, width, "cd-queued", f"queued {humanize_duration(queued_until - start)}")
    bars = []
    for step, (begin, finish) in zip(steps, spans, strict=True):
        left, width = place(begin, finish)
        label = _label(step, begin, finish, now)
        at = offset(begin, start)
        bars.append(Bar(left, width, _css(step, now), label, step, at, _wake(step, now)))
    ticks = [
        (fraction * 100, _tick(start, total, fraction)) for fraction in (0, 0.25, 0.5, 0.75, 1)
    ]
    now_at = round((now - start).total_seconds() / total * 100, 3) if now < end else None
    return Timeline(start, end, queued, bars, ticks, now_at, truncated)


def for_execution(execution: Execution) -> Timeline:
    """One query: the steps in the order they started."""
    steps = list(execution.steps.order_by("started_at", "id")[: STEP_LIMIT + 1])
    return build(execution, steps[:STEP_LIMIT], truncated=len(steps) > STEP_LIMIT)


def _span(step: Step, now: datetime) -> tuple[datetime, datetime]:
    if step.kind == StepKind.SLEEP:
        return step.started_at, max(step.wake_at or step.started_at, step.started_at)
    return step.started_at, step.finished_at or max(now, step.started_at)


def _css(step: Step, now: datetime) -> str:
    kind = {StepKind.SLEEP: "cd-sleep", StepKind.INVOKE: "cd-wait", StepKind.EVENT: "cd-wait"}.get(
        StepKind(step.kind), "cd-work"
    )
    if step.error:
        return f"{kind} cd-error"
    if step.kind == StepKind.SLEEP:
        return kind if (step.wake_at or now) <= now else f"{kind} cd-open"
    return kind if step.finished_at else f"{kind} cd-open"


def _label(step: Step, begin: datetime, finish: datetime, now: datetime) -> str:
    took = humanize_duration(finish - begin)
    if step.kind == StepKind.SLEEP:
        if finish > now:
            return f"sleeping, wakes {relative(finish, now)}"
        return f"slept {took}"
    if step.kind == StepKind.INVOKE:
        child = f"child #{step.child_id}" if step.child_id else "child"
        if step.finished_at is None:
            return f"waiting on {child} for {took}"
        return f"{child} failed after {took}" if step.error else f"waited {took} on {child}"
    if step.kind == StepKind.EVENT:
        event = f"event {step.awaited_event!r}"
        if step.finished_at is None:
            return f"waiting for {event} for {took}"
        return f"no {event} came in {took}" if step.error else f"{event} came after {took}"
    if step.error:
        return f"failed after {took}"
    return took if step.finished_at else f"started {took} ago, not recorded yet"


def _wake(step: Step, now: datetime) -> SafeString | str:
    if step.kind != StepKind.SLEEP or step.wake_at is None:
        return ""
    return format_html("{} {}", "wakes" if step.wake_at > now else "woke", when(step.wake_at))


def _tick(start: datetime, total: float, fraction: float) -> SafeString | str:
    if fraction == 0:
        return when(start)
    return "+" + humanize_duration(timedelta(seconds=total * fraction))
