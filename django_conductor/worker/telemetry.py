"""What an attempt tells the world as it runs: the Django signals of ``django_conductor.signals``
(when a receiver is connected) and its OpenTelemetry span, step spans and metrics (when a
provider is set). Built only when one of them is on: an attempt nobody watches holds None
and pays three list checks and a provider look-up. Nothing here may fail an attempt: a
receiver that raises is logged by ``send_robust``, a failing exporter by ``otel.trouble``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import signals
from ..registry import registry
from ..replay import Event
from ..statuses import Status
from ..telemetry import otel

if TYPE_CHECKING:
    from ..definition import Task
    from .claimed import Claimed, Outcome


def outcome_name(outcome: Outcome | None) -> str:
    """What an attempt came to, finer than the status it leaves: a pending execution is
    retrying (an attempt used) or requeued (none used: a hand-back, a stop, a window)."""
    if outcome is None:
        return "lost"
    if outcome.status == Status.PENDING:
        return "requeued" if outcome.refund else "retrying"
    return str(outcome.status)


#: Outcomes whose attempt raised: its span is in error.
RAISED = frozenset({"failed", "retrying"})


class _Watch:
    """What the attempt of a single execution and that of a batch share."""

    def __init__(self, task: Task | None, tracer: Any, meters: otel.Instruments | None) -> None:
        self.task = task
        self.tracer = tracer
        self.meters = meters
        self.signalled = signals.listened()
        self.began = time.monotonic()
        self.error: BaseException | None = None
        self.span: otel.OpenSpan | None = None

    def raised(self, error: BaseException) -> None:
        """The handler raised ``error``: the span records it if the attempt failed."""
        self.error = error

    def _started(self, claimed: Claimed, event: Event, batch: int) -> None:
        if self.signalled:
            signals.execution_started.send_robust(
                self.task, **_about(claimed), event=event, batch=batch
            )
        if self.meters is not None:
            due = claimed.run_at
            lag = 0.0 if due is None else (claimed.clock.now() - due).total_seconds()
            try:
                self.meters.lag.record(max(lag, 0.0), _metric_attributes(claimed))
            except Exception as exc:
                otel.trouble("record a metric", exc)

    def _finished(self, claimed: Claimed, outcome: Outcome | None, batch: int) -> str:
        name = outcome_name(outcome)
        duration = time.monotonic() - self.began
        if self.signalled:
            signals.execution_finished.send_robust(
                self.task,
                **_about(claimed),
                batch=batch,
                status=None if outcome is None else str(outcome.status),
                outcome=name,
                duration=duration,
                error=None if outcome is None else (outcome.error or None),
            )
        if self.meters is not None:
            attributes = _metric_attributes(claimed)
            timed = {**attributes, "messaging.operation.name": "process"}
            if name in RAISED:
                timed["error.type"] = _error_type(self.error)
            try:
                self.meters.attempts.add(1, {**attributes, "conductor.outcome": name})
                self.meters.duration.record(duration, timed)
            except Exception as exc:
                otel.trouble("record a metric", exc)
        return name

    def _open(self, name: str, attributes: dict[str, Any], links: list[Any]) -> None:
        if self.tracer is not None:
            self.span = otel.open_span(self.tracer, name, "CONSUMER", attributes, links)

    def _close(self, names: Sequence[str], error: str | None) -> None:
        if self.span is None:
            return
        self.span.set({"conductor.outcome": names[0] if len(set(names)) == 1 else "mixed"})
        failed = any(name in RAISED for name in names)
        self.span.close(self.error if failed else None, (error or "failed") if failed else None)


class AttemptWatch(_Watch):
    """One attempt of one execution."""

    def __init__(self, claimed: Claimed, event: Event, tracer: Any, meters: Any) -> None:
        super().__init__(registry.tasks.get(claimed.task_name), tracer, meters)
        self.claimed = claimed
        attributes = {
            **_span_attributes(claimed),
            "messaging.message.id": str(claimed.id),
            "conductor.attempt": claimed.attempt,
        }
        self._open(f"process {claimed.task_name}", attributes, _links([claimed]))
        self._started(claimed, event, 1)

    def step(self, name: str) -> StepWatch:
        return StepWatch(self, name)

    def finished(self, outcome: Outcome | None) -> None:
        try:
            name = self._finished(self.claimed, outcome, 1)
            self._close([name], None if outcome is None else outcome.error)
        except Exception as exc:  # the outcome is written all the same
            otel.trouble("end an attempt's telemetry", exc)


class BatchWatch(_Watch):
    """One attempt of a batch: a span for the batch, linked to each member's invoke; the
    signals and metrics for each member."""

    def __init__(
        self, members: list[Claimed], events: list[Event], tracer: Any, meters: Any
    ) -> None:
        first = members[0]
        super().__init__(registry.tasks.get(first.task_name), tracer, meters)
        self.members = members
        attributes = {
            **_span_attributes(first),
            "messaging.batch.message_count": len(members),
        }
        self._open(f"process {first.task_name}", attributes, _links(members))
        for claimed, event in zip(members, events, strict=True):
            self._started(claimed, event, len(members))

    def finished(self, outcomes: list[Outcome]) -> None:
        size = len(self.members)
        try:
            names = [
                self._finished(claimed, outcome, size)
                for claimed, outcome in zip(self.members, outcomes, strict=True)
            ]
            self._close(names, next((o.error for o in outcomes if o.error), None))
        except Exception as exc:
            otel.trouble("end a batch's telemetry", exc)


class StepWatch:
    """One ``ctx.step`` running its function: a span current meanwhile, and a signal at
    its end."""

    def __init__(self, attempt: AttemptWatch, name: str) -> None:
        self.attempt = attempt
        self.name = name
        self.span: otel.OpenSpan | None = None

    def __enter__(self) -> StepWatch:
        self.began = time.monotonic()
        if self.attempt.tracer is not None:
            claimed = self.attempt.claimed
            attributes = {
                "conductor.step.name": self.name,
                "conductor.task.name": claimed.task_name,
                "messaging.message.id": str(claimed.id),
            }
            self.span = otel.open_span(
                self.attempt.tracer, f"step {self.name}", "INTERNAL", attributes
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._ended(error)
        except Exception as exc:  # the step's own exception, if any, goes on unchanged
            otel.trouble("end a step's telemetry", exc)

    def _ended(self, error: BaseException | None) -> None:
        if self.span is not None:
            self.span.close(error)
        if self.attempt.signalled:
            claimed = self.attempt.claimed
            signals.step_finished.send_robust(
                self.attempt.task,
                execution_id=claimed.id,
                task_name=claimed.task_name,
                attempt=claimed.attempt,
                name=self.name,
                duration=time.monotonic() - self.began,
                raised=error is not None,
                error=error,
            )


def watch_attempt(claimed: Claimed, event: Event) -> AttemptWatch | None:
    """The attempt's watch, or None when nothing listens and no provider is set."""
    tracer = otel.tracer()
    meters = otel.instruments()
    if tracer is None and meters is None and not signals.listened():
        return None
    try:
        return AttemptWatch(claimed, event, tracer, meters)
    except Exception as exc:  # no telemetry for this attempt, rather than no attempt
        otel.trouble("begin an attempt's telemetry", exc)
        return None


def watch_batch(members: list[Claimed], events: list[Event]) -> BatchWatch | None:
    tracer = otel.tracer()
    meters = otel.instruments()
    if tracer is None and meters is None and not signals.listened():
        return None
    try:
        return BatchWatch(members, events, tracer, meters)
    except Exception as exc:
        otel.trouble("begin a batch's telemetry", exc)
        return None


def _about(claimed: Claimed) -> dict[str, Any]:
    return {
        "execution_id": claimed.id,
        "task_name": claimed.task_name,
        "queue": claimed.queue,
        "attempt": claimed.attempt,
    }


def _metric_attributes(claimed: Claimed) -> dict[str, Any]:
    return {
        "messaging.system": otel.SYSTEM,
        "messaging.destination.name": claimed.queue,
        "conductor.task.name": claimed.task_name,
    }


def _span_attributes(claimed: Claimed) -> dict[str, Any]:
    return {
        "messaging.system": otel.SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": claimed.queue,
        "conductor.task.name": claimed.task_name,
    }


def _links(members: Sequence[Claimed]) -> list[Any]:
    return [link for claimed in members for link in otel.link_to(claimed.trace_context)]


def _error_type(error: BaseException | None) -> str:
    return "_OTHER" if error is None else type(error).__qualname__
