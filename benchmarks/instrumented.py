"""Telemetry for the ``telemetry`` workload's worker processes, chosen by the environment
(``CONDUCTOR_BENCH_TELEMETRY``): ``signals``, a receiver on each of django_conductor's
signals; ``otel``, the OpenTelemetry SDK as production sets it up (a batch span processor, a
periodic metric reader) with exporters that discard what they get, counting the spans. At
exit the count goes to the log, so that the workload can tell the telemetry was on."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from typing import Any

MODE_VARIABLE = "CONDUCTOR_BENCH_TELEMETRY"
#: How the worker's log says what it sent, for ``workloads.telemetry`` to read.
SENT = "telemetry sent:"


def install() -> None:
    mode = os.environ.get(MODE_VARIABLE)
    if mode == "signals":
        _receivers()
    elif mode == "otel":
        _sdk()


def _receivers() -> None:
    from django_conductor import signals

    heard = {"count": 0}

    def receive(sender: Any, **kwargs: Any) -> None:
        heard["count"] += 1

    for signal in signals.SIGNALS:
        signal.connect(receive, weak=False)
    atexit.register(lambda: print(f"{SENT} {heard['count']} signals", file=sys.stderr))


def _sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DiscardSpans(SpanExporter):
        def __init__(self) -> None:
            self.spans = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            self.spans += len(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            print(f"{SENT} {self.spans} spans", file=sys.stderr, flush=True)

    class DiscardMetrics(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DiscardSpans()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(DiscardMetrics(), export_interval_millis=5_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
