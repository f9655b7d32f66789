"""OpenTelemetry through the real SDK, its in-memory span exporter and metric reader: producer
spans for invoke, invoke_many, emit and child invokes, their trace context stored with the
executions, a consumer span per attempt linked to it, a span per step, and the metrics;
telemetry that breaks never fails an attempt."""

import json
import logging
import os
import subprocess
import sys

import pytest
from django.db import connection
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from django_conductor import emit, telemetry
from django_conductor.models import Execution, Status
from django_conductor.telemetry import otel
from tests.testapp.telemetry_tasks import (
    tel_batch,
    tel_parent,
    tel_retries,
    tel_steps,
)

from .conftest import ROOT

MESSAGING = {"messaging.system": "django_conductor", "messaging.destination.name": "default"}


class Recorded:
    """The spans and metrics the SDK recorded, read by name."""

    def __init__(self, exporter, reader, tracer_provider):
        self.exporter = exporter
        self.reader = reader
        self.tracer = tracer_provider.get_tracer("tests")

    def spans(self, name=None, kind=None):
        return [
            span
            for span in self.exporter.get_finished_spans()
            if (name is None or span.name == name) and (kind is None or span.kind == kind)
        ]

    def span(self, name, **attributes):
        (found,) = [s for s in self.spans(name) if s.attributes.items() >= attributes.items()]
        return found

    def points(self, metric_name):
        data = self.reader.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == metric_name
            for point in metric.data.data_points
        ]


@pytest.fixture
def recorded():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Recorded(exporter, reader, tracer_provider)
    telemetry.configure()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def stored_context(execution_id):
    return Execution.objects.get(pk=execution_id).trace_context


def traceparent_of(span):
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def linked(span):
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def ids_of(span):
    return (span.context.trace_id, span.context.span_id)


def test_an_invoke_and_its_attempt_are_linked_and_its_steps_nest_in_the_attempt(
    run_worker, recorded
):
    with recorded.tracer.start_as_current_span("request") as request:
        handle = tel_steps.invoke({"n": 21})

    invoke = recorded.span("invoke tel-steps")
    assert invoke.kind == SpanKind.PRODUCER
    assert invoke.parent.span_id == request.get_span_context().span_id
    assert invoke.attributes == {
        **MESSAGING,
        "messaging.operation.type": "send",
        "messaging.operation.name": "invoke",
        "messaging.message.id": str(handle.id),
        "conductor.task.name": "tel-steps",
    }
    assert stored_context(handle.id)["traceparent"] == traceparent_of(invoke)

    run_worker()

    process = recorded.span("process tel-steps")
    assert process.kind == SpanKind.CONSUMER
    assert process.parent is None  # its own trace, linked to the invoke's
    assert linked(process) == [ids_of(invoke)]
    assert process.attributes == {
        **MESSAGING,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.message.id": str(handle.id),
        "conductor.task.name": "tel-steps",
        "conductor.attempt": 1,
        "conductor.outcome": "completed",
    }
    assert process.status.status_code == StatusCode.UNSET
    double, refuse = recorded.span("step double"), recorded.span("step refuse")
    for step in (double, refuse):
        assert step.kind == SpanKind.INTERNAL
        assert step.parent.span_id == process.context.span_id
        assert step.attributes["conductor.step.name"] == step.name.removeprefix("step ")
    assert double.status.status_code == StatusCode.UNSET
    # The step that raised is in error, with its exception recorded; the handler caught it.
    assert refuse.status.status_code == StatusCode.ERROR
    assert refuse.attributes["error.type"] == "ValueError"
    assert [event.name for event in refuse.events] == ["exception"]


def test_invoke_many_is_one_send_that_every_execution_links_to(run_worker, recorded):
    handles = tel_steps.invoke_many([{"n": 1}, {"n": 2}, {"n": 3}])

    (invoke,) = recorded.spans("invoke tel-steps")
    assert invoke.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in invoke.attributes
    assert {stored_context(h.id)["traceparent"] for h in handles} == {traceparent_of(invoke)}

    run_worker()

    processes = recorded.spans("process tel-steps")
    assert sorted(p.attributes["messaging.message.id"] for p in processes) == sorted(
        str(h.id) for h in handles
    )
    assert all(linked(p) == [ids_of(invoke)] for p in processes)


def test_a_child_invoke_is_sent_from_the_parents_attempt(run_worker, recorded):
    parent = tel_parent.invoke()
    run_worker()

    assert Execution.objects.get(pk=parent.id).result == 42
    first, replay = sorted(recorded.spans("process tel-parent"), key=lambda s: s.start_time)
    assert (first.attributes["conductor.outcome"], replay.attributes["conductor.outcome"]) == (
        "waiting",
        "completed",
    )
    # Both attempts link to the parent's invoke; the child's invoke is sent inside the first.
    invoke = recorded.span("invoke tel-parent")
    assert linked(first) == linked(replay) == [ids_of(invoke)]
    child_invoke = recorded.span("invoke tel-child")
    assert child_invoke.kind == SpanKind.PRODUCER
    assert child_invoke.parent.span_id == first.context.span_id
    child = Execution.objects.get(parent_id=parent.id)
    assert child_invoke.attributes["messaging.message.id"] == str(child.id)
    (child_process,) = recorded.spans("process tel-child")
    assert linked(child_process) == [ids_of(child_invoke)]
    # The replay returned the step from its record: one step span in all.
    assert len(recorded.spans("step before")) == 1


def test_an_emit_is_sent_and_its_subscribers_link_to_it(run_worker, recorded):
    (handle,) = emit("tel.happened", {"n": 1})

    send = recorded.span("emit tel.happened")
    assert send.kind == SpanKind.PRODUCER
    assert send.attributes["messaging.destination.name"] == "tel.happened"
    assert send.attributes["messaging.operation.name"] == "emit"
    assert send.attributes["messaging.message.id"] == str(handle.id)
    assert stored_context(handle.id)["traceparent"] == traceparent_of(send)

    run_worker()

    assert linked(recorded.span("process tel-on-event")) == [ids_of(send)]


def test_a_failed_attempt_is_an_error_span_and_the_metrics_count_each_outcome(run_worker, recorded):
    handle = tel_retries.invoke()
    run_worker()

    assert Execution.objects.get(pk=handle.id).status == Status.COMPLETED
    failed = recorded.span("process tel-retries", **{"conductor.attempt": 1})
    assert failed.attributes["conductor.outcome"] == "retrying"
    assert failed.attributes["error.type"] == "RuntimeError"
    assert failed.status.status_code == StatusCode.ERROR
    assert "first attempt fails" in failed.status.description
    assert [event.name for event in failed.events] == ["exception"]
    retried = recorded.span("process tel-retries", **{"conductor.attempt": 2})
    assert retried.status.status_code == StatusCode.UNSET

    attempts = {
        point.attributes["conductor.outcome"]: point.value
        for point in recorded.points("conductor.attempts")
        if point.attributes["conductor.task.name"] == "tel-retries"
    }
    assert attempts == {"retrying": 1, "completed": 1}
    durations = recorded.points("messaging.process.duration")
    assert sum(point.count for point in durations) == 2
    (in_error,) = [point for point in durations if "error.type" in point.attributes]
    assert (
        in_error.attributes.items()
        >= {
            **MESSAGING,
            "messaging.operation.name": "process",
            "error.type": "RuntimeError",
        }.items()
    )
    assert in_error.count == 1 and in_error.sum >= 0
    (lag,) = recorded.points("conductor.queue.lag")
    assert lag.count == 2 and lag.min >= 0
    assert lag.attributes == {**MESSAGING, "conductor.task.name": "tel-retries"}


def test_a_batch_is_one_span_linked_to_each_members_invoke(run_worker, recorded):
    invokes = [tel_batch.invoke(n) for n in range(3)]
    run_worker()

    (process,) = recorded.spans("process tel-batch")
    assert process.attributes["messaging.batch.message_count"] == 3
    assert process.attributes["conductor.outcome"] == "completed"
    sends = recorded.spans("invoke tel-batch")
    assert sorted(linked(process)) == sorted(ids_of(send) for send in sends)
    assert len(sends) == len(invokes)
    (attempts,) = recorded.points("conductor.attempts")
    assert (attempts.value, attempts.attributes["conductor.outcome"]) == (3, "completed")


def test_an_untraced_invoke_stores_no_trace_context(run_worker):
    assert otel.tracer() is None  # no provider set in this process: tracing is off
    handle = tel_steps.invoke({"n": 1})
    assert stored_context(handle.id) is None
    run_worker()
    assert Execution.objects.get(pk=handle.id).status == Status.COMPLETED


class Broken(SpanProcessor):
    """A span processor that raises where the SDK calls it: on start, or on end."""

    def __init__(self, where):
        self.where = where

    def on_start(self, span, parent_context=None):
        if self.where == "start":
            raise RuntimeError("a broken span processor")

    def on_end(self, span):
        if self.where == "end":
            raise RuntimeError("a broken span processor")


class BrokenMeters(MeterProvider):
    def get_meter(self, *args, **kwargs):
        raise RuntimeError("a broken meter provider")


@pytest.mark.parametrize("where", ["start", "end"])
def test_broken_telemetry_fails_no_attempt_and_no_worker(run_worker, caplog, where):
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(Broken(where))
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=BrokenMeters())
    try:
        with caplog.at_level(logging.WARNING, logger="django_conductor.telemetry"):
            handles = [tel_steps.invoke({"n": 2}), tel_parent.invoke(), tel_batch.invoke(5)]
            worker = run_worker()
    finally:
        telemetry.configure()
        otel._warned.clear()

    assert worker.failure is None
    executions = Execution.objects.in_bulk([h.id for h in handles])
    assert [executions[h.id].status for h in handles] == [Status.COMPLETED] * 3
    assert [executions[h.id].result for h in handles] == [{"doubled": 4}, 42, 5]
    told = [r.getMessage() for r in caplog.records if r.name == "django_conductor.telemetry"]
    assert any("a broken span processor" in message for message in told)
    assert any("a broken meter provider" in message for message in told)


#: Runs in a fresh interpreter where ``opentelemetry`` cannot be imported: an invoke and a
#: worker's attempt of it on the test database, with telemetry off.
WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # as if the extra were not installed
import django
django.setup()
from django_conductor.telemetry import otel, producing
from django_conductor.models import Execution
from django_conductor.worker import Worker
from tests.testapp.telemetry_tasks import tel_steps
assert otel.otel_trace is None and otel.tracer() is None and otel.instruments() is None
handle = tel_steps.invoke({"n": 4})
Worker(burst=True, install_signal_handlers=False, concurrency=1).run()
execution = Execution.objects.get(pk=handle.id)
print(execution.status, execution.result, execution.trace_context)
"""


def test_without_the_opentelemetry_package_executions_run_untraced(transactional_db):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONDUCTOR_DATABASE_NAME": connection.settings_dict["NAME"],
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_OTEL],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "completed " + str({"doubled": 8}) + " None"


def test_a_stored_trace_context_that_is_not_one_gives_no_link():
    assert otel.link_to(None) == []
    assert otel.link_to(json.dumps({"traceparent": "not a traceparent"})) == []
    assert otel.link_to("not json") == []
