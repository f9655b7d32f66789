"""The Django signals a worker sends about its attempts (``django_conductor.signals``): in the
thread that runs the attempt, with what a receiver needs, and never at the attempt's cost."""

import logging
import threading

import pytest

from django_conductor import signals
from django_conductor.models import Execution, Status
from django_conductor.worker.telemetry import watch_attempt
from tests.testapp.telemetry_tasks import (
    tel_batch,
    tel_fails,
    tel_parent,
    tel_retries,
    tel_steps,
)


class Heard:
    """Receivers connected to the three signals for one test, recording what they got."""

    def __init__(self):
        self.calls = []

    def receiver(self, name):
        def receive(sender, signal, **kwargs):
            self.calls.append((name, sender, threading.current_thread().name, kwargs))

        return receive

    def of(self, name, **match):
        return [
            kwargs
            for heard, _, _, kwargs in self.calls
            if heard == name and all(kwargs.get(k) == v for k, v in match.items())
        ]


@pytest.fixture
def heard():
    recorder = Heard()
    receivers = {
        signal: recorder.receiver(name)
        for name, signal in [
            ("started", signals.execution_started),
            ("finished", signals.execution_finished),
            ("step", signals.step_finished),
        ]
    }
    for signal, receive in receivers.items():
        signal.connect(receive, weak=False)
    yield recorder
    for signal, receive in receivers.items():
        signal.disconnect(receive)


def test_an_attempt_and_its_steps_are_signalled_in_order_in_the_worker_thread(run_worker, heard):
    handle = tel_steps.invoke({"n": 21})
    run_worker()

    assert [name for name, *_ in heard.calls] == ["started", "step", "step", "finished"]
    assert {sender for _, sender, _, _ in heard.calls} == {tel_steps}
    assert all(thread.startswith("conductor-slot") for _, _, thread, _ in heard.calls)
    started, double, refuse, finished = (kwargs for *_, kwargs in heard.calls)
    about = {"execution_id": handle.id, "task_name": "tel-steps", "attempt": 1}
    assert started.items() >= {**about, "queue": "default", "batch": 1}.items()
    assert started["event"].payload == {"n": 21}
    assert double.items() >= {**about, "name": "double", "raised": False, "error": None}.items()
    assert refuse["name"] == "refuse" and refuse["raised"] is True
    assert isinstance(refuse["error"], ValueError)
    assert double["duration"] >= 0 and refuse["duration"] >= 0
    assert (
        finished.items()
        >= {
            **about,
            "status": Status.COMPLETED,
            "outcome": "completed",
            "error": None,
        }.items()
    )
    assert finished["duration"] >= double["duration"] + refuse["duration"]


def test_a_retry_and_a_final_failure_are_told_apart(run_worker, heard):
    retried = tel_retries.invoke()
    failed = tel_fails.invoke()
    run_worker()

    assert [
        (k["attempt"], k["status"], k["outcome"])
        for k in heard.of("finished", execution_id=retried.id)
    ] == [
        (1, Status.PENDING, "retrying"),
        (2, Status.COMPLETED, "completed"),
    ]
    assert "first attempt fails" in heard.of("finished", execution_id=retried.id)[0]["error"]
    (gave_up,) = heard.of("finished", execution_id=failed.id)
    assert (gave_up["status"], gave_up["outcome"]) == (Status.FAILED, "failed")
    assert "gave up" in gave_up["error"]


def test_a_replay_signals_a_new_attempt_but_no_recorded_step_again(run_worker, heard):
    parent = tel_parent.invoke()
    run_worker()

    assert Execution.objects.get(pk=parent.id).status == Status.COMPLETED
    assert [k["outcome"] for k in heard.of("finished", execution_id=parent.id)] == [
        "waiting",
        "completed",
    ]
    # The step ran once; its replay returned the record and sent nothing.
    assert [k["name"] for k in heard.of("step", execution_id=parent.id)] == ["before"]
    (child,) = heard.of("finished", task_name="tel-child")
    assert child["outcome"] == "completed"


def test_each_member_of_a_batch_is_signalled(run_worker, heard):
    handles = tel_batch.invoke_many([1, 2, 3])
    run_worker()

    ids = sorted(handle.id for handle in handles)
    assert sorted(k["execution_id"] for k in heard.of("started", batch=3)) == ids
    finished = heard.of("finished", batch=3, outcome="completed")
    assert sorted(k["execution_id"] for k in finished) == ids
    assert heard.of("step") == []


def test_a_receiver_that_raises_changes_nothing_about_the_attempt(run_worker, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("a broken receiver")

    for signal in signals.SIGNALS:
        signal.connect(broken, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            handle = tel_steps.invoke({"n": 2})
            run_worker()
    finally:
        for signal in signals.SIGNALS:
            signal.disconnect(broken)

    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.result, execution.attempts) == (
        Status.COMPLETED,
        {"doubled": 4},
        1,
    )
    # Started, two steps, finished: each failure logged, none raised into the attempt.
    raised = [r for r in caplog.records if "a broken receiver" in str(r.exc_info[1])]
    assert len(raised) == 4


def test_nothing_is_built_for_an_attempt_nobody_watches():
    """No receiver and no OpenTelemetry provider: the attempt holds no watch at all."""
    assert not signals.listened()
    assert watch_attempt(object(), object()) is None
