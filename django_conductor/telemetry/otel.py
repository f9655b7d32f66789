"""OpenTelemetry, when ``opentelemetry-api`` is installed and a tracer or meter provider is
set (globally, or by ``configure``); None everywhere else. Imported once: without the API a
caller pays one None check, with it and no provider a clock read (the providers are looked
up once a second). Every call into the SDK here catches and logs what it raises
(``trouble``): telemetry never fails an attempt or kills a worker."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import propagate
    from opentelemetry import trace as otel_trace
except ImportError:  # the optional extra is not installed: telemetry stays off
    otel_trace = None  # type: ignore[assignment]

logger = logging.getLogger("django_conductor.telemetry")

#: ``messaging.system``: ours, as the conventions allow for a system they do not list.
SYSTEM = "django_conductor"
SCOPE = "django_conductor"
try:
    VERSION = version("django-conductor")
except PackageNotFoundError:  # run from a source tree
    VERSION = "0"

#: Seconds: the messaging conventions' buckets for processing, stretched to long attempts.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
#: Seconds: a queue's lag ranges from milliseconds to a backlog of hours.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


@dataclass(frozen=True)
class Instruments:
    """The worker's metrics (see docs/telemetry.md)."""

    attempts: Any
    duration: Any
    lag: Any


class _Chosen:
    """Providers given to ``configure``, used instead of the global ones."""

    tracer_provider: Any = None
    meter_provider: Any = None


_chosen = _Chosen()
#: How often the providers are looked up again (seconds): a provider set after start-up is
#: used within this long, and an attempt pays a clock read, not a look-up.
LOOK_EVERY = 1.0
#: When they were last looked up, and the tracer and instruments found then (None: off).
_looked: tuple[float, Any, Instruments | None] = (-math.inf, None, None)
#: (provider, its tracer or instruments): each made again only for a new provider.
_tracer: tuple[Any, Any] = (None, None)
_instruments: tuple[Any, Instruments | None] = (None, None)
_warned: set[str] = set()
_warned_lock = threading.Lock()


def configure(*, tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Trace and measure with these providers rather than the global ones (a test, a process
    that keeps several); with no arguments, the global ones again. Takes effect at once."""
    global _looked
    _chosen.tracer_provider = tracer_provider
    _chosen.meter_provider = meter_provider
    _looked = (-math.inf, None, None)


def tracer() -> Any:
    """This package's tracer, or None when no tracer provider is set."""
    return _active()[1]


def instruments() -> Instruments | None:
    """The worker's instruments, or None when no meter provider is set."""
    return _active()[2]


def _active() -> tuple[float, Any, Instruments | None]:
    global _looked
    if otel_trace is None:
        return _looked
    looked = _looked
    now = time.monotonic()
    if now - looked[0] < LOOK_EVERY:
        return looked
    looked = (now, _look_up_tracer(), _look_up_instruments())
    _looked = looked
    return looked


def _look_up_tracer() -> Any:
    global _tracer
    provider = _chosen.tracer_provider or otel_trace.get_tracer_provider()
    seen, found = _tracer
    if provider is seen:
        return found
    found = None
    if not isinstance(provider, otel_trace.ProxyTracerProvider | otel_trace.NoOpTracerProvider):
        try:
            found = provider.get_tracer(SCOPE, VERSION)
        except Exception as exc:
            trouble("get a tracer", exc)
    _tracer = (provider, found)
    return found


def _look_up_instruments() -> Instruments | None:
    global _instruments
    provider = _chosen.meter_provider or otel_metrics.get_meter_provider()
    seen, found = _instruments
    if provider is seen:
        return found
    found = None
    if not _is_noop_meter_provider(provider):
        try:
            found = _create_instruments(provider.get_meter(SCOPE, VERSION))
        except Exception as exc:
            trouble("create the instruments", exc)
    _instruments = (provider, found)
    return found


def _create_instruments(meter: Any) -> Instruments:
    return Instruments(
        attempts=meter.create_counter(
            "conductor.attempts",
            unit="{attempt}",
            description="Attempts ended, by outcome; completed, failed and cancelled end "
            "their execution.",
        ),
        duration=meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of an attempt, from its start to its outcome.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
        lag=meter.create_histogram(
            "conductor.queue.lag",
            unit="s",
            description="From the time an execution became due (run_at) to the start of the "
            "attempt that ran it.",
            explicit_bucket_boundaries_advisory=LAG_BUCKETS,
        ),
    )


def _is_noop_meter_provider(provider: Any) -> bool:
    # The proxy handed out before any provider is set is private to the API: known by name.
    return isinstance(provider, otel_metrics.NoOpMeterProvider) or (
        type(provider).__name__ == "_ProxyMeterProvider"
    )


def trouble(what: str, exc: BaseException) -> None:
    """Log a telemetry failure: the first of each kind with its traceback, the rest quietly,
    so that a broken exporter does not flood the log once per attempt."""
    with _warned_lock:
        first = what not in _warned
        _warned.add(what)
    if first:
        logger.warning(
            "Telemetry failed to %s; executions go on without it: %s",
            what,
            exc,
            exc_info=exc,
            extra={"action": "telemetry_failed"},
        )
    else:
        logger.debug("Telemetry failed to %s again: %s", what, exc)


class OpenSpan:
    """A span started and made current in this thread, to be closed exactly once."""

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self._token = token

    def set(self, attributes: dict[str, Any]) -> None:
        try:
            self.span.set_attributes(attributes)
        except Exception as exc:
            trouble("set span attributes", exc)

    def close(self, error: BaseException | None = None, failed: str | None = None) -> None:
        """End the span: in error when ``error`` (recorded) or ``failed`` (a description)."""
        try:
            if error is not None:
                self.span.record_exception(error)
                self.span.set_attribute("error.type", type(error).__qualname__)
                failed = failed or f"{type(error).__qualname__}: {error}"
            if failed is not None:
                self.span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, failed))
        except Exception as exc:
            trouble("record a span's error", exc)
        finally:
            try:
                self.span.end()
            except Exception as exc:
                trouble("end a span", exc)
            try:
                otel_context.detach(self._token)
            except Exception as exc:
                trouble("restore the trace context", exc)


def open_span(
    found: Any,
    name: str,
    kind: str,
    attributes: dict[str, Any],
    links: Sequence[Any] = (),
) -> OpenSpan | None:
    """Start a span of ``kind`` (a ``SpanKind`` name) with ``found``, current until closed;
    None when it could not be started."""
    try:
        span = found.start_span(
            name,
            kind=getattr(otel_trace.SpanKind, kind),
            attributes=attributes,
            links=list(links),
        )
    except Exception as exc:
        trouble("start a span", exc)
        return None
    try:
        token = otel_context.attach(otel_trace.set_span_in_context(span))
    except Exception as exc:
        trouble("make a span current", exc)
        try:
            span.end()
        except Exception as again:
            trouble("end a span", again)
        return None
    return OpenSpan(span, token)


def current_carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, or None when there is none to store."""
    carrier: dict[str, str] = {}
    try:
        propagate.inject(carrier)
    except Exception as exc:
        trouble("store a trace context", exc)
        return None
    return carrier or None


def link_to(stored: str | None) -> list[Any]:
    """A link to the span context ``stored`` (JSON of what ``current_carrier`` gave), or none
    when it holds no valid one."""
    if not stored:
        return []
    try:
        carrier = json.loads(stored)
        context = otel_trace.get_current_span(propagate.extract(carrier)).get_span_context()
    except Exception as exc:
        trouble("read a stored trace context", exc)
        return []
    return [otel_trace.Link(context)] if context.is_valid else []
