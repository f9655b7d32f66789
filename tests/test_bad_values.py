"""Values that are valid JSON or text but that PostgreSQL cannot store (a NUL character, a
lone surrogate): the one attempt that made such a value fails with a clear error, every other
execution is recorded as usual, and no such value stops a worker (DESIGN.md: bad input gets
a clear error and loses nothing)."""

import json
import threading

import pytest
from django.db import connection, transaction

from django_conductor import ExecutionFailed, PayloadError, invoke, payloads
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.registry import registry
from django_conductor.worker import Worker
from django_conductor.worker.claimed import Outcome
from tests.conftest import wait_until
from tests.testapp import bad_value_tasks
from tests.testapp.bad_value_tasks import BAD_TEXT
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)

BAD = pytest.mark.parametrize("bad", sorted(BAD_TEXT))


def let_bad_values_past_the_boundary(monkeypatch):
    """Switch off the checks at the boundary, so that the values reach PostgreSQL and the
    batch writers' own defence is what is tested (as on a database whose encoding refuses
    text that the boundary lets through)."""
    monkeypatch.setattr(payloads, "jsonb_cannot_hold", lambda text: False)
    monkeypatch.setattr(payloads, "storable_text", lambda text: text)


def effects(kind):
    return list(SideEffect.objects.filter(kind=kind).values_list("value", flat=True))


def good_executions(count, **payload):
    return [invoke("bad-values-good-steps", {"n": n, **payload}).id for n in range(count)]


def assert_completed_once(ids):
    for execution in Execution.objects.filter(pk__in=ids):
        assert (execution.status, execution.claims) == ("completed", 1), execution.error
        assert Step.objects.filter(execution=execution, name="record").exists()
    assert sorted(effects("good")) == sorted(str(n) for n in range(len(ids)))  # each ran once


class WorkerThread:
    """An in-process burst worker on a thread of its own, so that the test can act while
    it runs; a worker that never drains (an execution that loops) fails the test."""

    def __init__(self, **options):
        self.worker = Worker(install_signal_handlers=False, burst=True, **options)
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.worker.run()
        except BaseException as exc:
            self.error = exc
        finally:
            connection.close()

    def join(self, timeout=30):
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.worker.stop(now=True)
            self.thread.join(30)
            claims = dict(Execution.objects.values_list("id", "claims"))
            raise AssertionError(f"the worker did not drain its work; claims: {claims}")
        assert self.error is None, f"the worker died: {self.error!r}"


def waiting_on_a_lock():
    """The step writer waits on the locked step table."""
    with connection.cursor() as cursor:  # pg_locks is read live
        cursor.execute(
            "SELECT count(*) FROM pg_locks "
            "WHERE NOT granted AND relation = 'django_conductor_step'::regclass"
        )
        return cursor.fetchone()[0] > 0


@pytest.fixture
def worker_thread(transactional_db):
    started = []

    def start(**options):
        run = WorkerThread(**options)
        started.append(run)
        return run

    yield start
    for run in started:
        run.worker.stop(now=True)
        run.thread.join(30)


@pytest.fixture
def gates():
    bad_value_tasks.STEPS_GO.clear()
    bad_value_tasks.WRITER_HOLD_GO.clear()
    yield
    bad_value_tasks.STEPS_GO.set()
    bad_value_tasks.WRITER_HOLD_GO.set()


@pytest.mark.parametrize(
    ("task_name", "bad", "past_the_boundary"),
    [
        ("bad-values-step-result", "nul", False),
        ("bad-values-step-result", "lone-surrogate", False),
        ("bad-values-step-result", "nul", True),
        ("bad-values-step-result", "lone-surrogate", True),
        ("bad-values-step-name", "nul", False),
    ],
    ids=["nul", "lone-surrogate", "nul-in-the-batch", "surrogate-in-the-batch", "nul-name"],
)
def test_a_step_result_postgres_cannot_store_fails_only_that_attempt(
    worker_thread, gates, monkeypatch, caplog, task_name, bad, past_the_boundary
):
    if past_the_boundary:
        let_bad_values_past_the_boundary(monkeypatch)
    holder = invoke("bad-values-hold-writer", {"gated": True}).id
    good = good_executions(3, gated=True)
    bad_id = invoke(task_name, {"bad": bad, "gated": True}).id
    run = worker_thread(concurrency=5)

    # The step writer waits on the locked step table with the holder's record, so that the
    # records of the other four gather behind it and go out as one batch.
    wait_until(lambda: Execution.objects.filter(status="running").count() == 5)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("LOCK TABLE django_conductor_step IN SHARE MODE")
        bad_value_tasks.WRITER_HOLD_GO.set()
        wait_until(waiting_on_a_lock)
        bad_value_tasks.STEPS_GO.set()
        wait_until(lambda: len(run.worker.step_writer._waiting) == 4)
    run.join()

    assert_completed_once(good)
    assert Execution.objects.get(pk=holder).status == "completed"
    execution = Execution.objects.get(pk=bad_id)
    assert (execution.status, execution.attempts, execution.claims) == ("failed", 2, 2)
    step = "makes-bad-text" if task_name == "bad-values-step-result" else "bad\x00name"
    assert f"Step {step!r}" in execution.error
    assert "PostgreSQL cannot store" in execution.error
    record = FailedExecution.objects.get(execution=execution)
    assert "StepResultError" in record.traceback
    refused = [r for r in caplog.records if getattr(r, "action", "") == "step_refused"]
    # Refused at the boundary, or by PostgreSQL in the batch and split out of it:
    assert len(refused) == (2 if past_the_boundary or task_name == "bad-values-step-name" else 0)


def test_a_nul_in_an_exception_message_is_stored_and_the_worker_survives(run_worker):
    handle = invoke("bad-values-exception", {"bad": "nul"})
    good = good_executions(3)
    run_worker()  # returns: the loop did not die

    assert_completed_once(good)
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.claims) == ("failed", 2, 2)
    assert execution.error == "RuntimeError: cannot handle before\\x00after"
    record = FailedExecution.objects.get(execution=execution)
    assert "RuntimeError: cannot handle before\\x00after" in record.traceback
    assert effects("bad-exception-run") == ["", ""]


@BAD
def test_an_error_text_postgres_cannot_store_is_made_storable_in_the_batch(
    run_worker, monkeypatch, bad
):
    let_bad_values_past_the_boundary(monkeypatch)
    handle = invoke("bad-values-exception", {"bad": bad})
    good = good_executions(3)
    run_worker()

    assert_completed_once(good)
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.claims) == ("failed", 2)
    escaped = {"nul": "before\\x00after", "lone-surrogate": "before\\ud800after"}[bad]
    assert f"RuntimeError: cannot handle {escaped}" in execution.error
    assert escaped in FailedExecution.objects.get(execution=execution).traceback


@BAD
def test_a_result_postgres_cannot_store_fails_the_attempt_with_a_clear_message(run_worker, bad):
    handle = invoke("bad-values-result", {"bad": bad})
    good = good_executions(3)
    run_worker()

    assert_completed_once(good)
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.claims) == ("failed", 1, 1)
    assert "The handler returned a value that cannot be stored" in execution.error
    assert "the result['text'] is a string holding" in execution.error
    assert "which PostgreSQL cannot store" in execution.error
    with pytest.raises(ExecutionFailed, match="PostgreSQL cannot store"):
        handle.wait(1)


@BAD
def test_a_batch_of_outcomes_writes_the_good_ones_when_one_cannot_be_stored(
    execution_factory, caplog, bad
):
    """The worker's outcome writer on its own, with a batch made by hand: the defence
    behind the boundary, for whatever text still reaches it."""
    running = [execution_factory(status="running", claims=1, attempts=1) for _ in range(4)]
    good_result, bad_result, good_too, bad_error = running
    worker = Worker(install_signal_handlers=False, concurrency=1)
    worker.holdings.outcomes = [
        Outcome(good_result.id, 1, "completed", result="1", error=""),
        Outcome(bad_result.id, 1, "completed", result=json.dumps(BAD_TEXT[bad]), error=""),
        Outcome(good_too.id, 1, "completed", result="3", error=""),
        Outcome(bad_error.id, 1, "failed", error=BAD_TEXT[bad], traceback=BAD_TEXT[bad]),
    ]

    with caplog.at_level("ERROR"):
        worker.claiming.outcomes.flush()  # does not raise
    refused = [r.args[0] for r in caplog.records if r.action == "outcome_refused"]
    assert refused == [bad_result.id, bad_error.id]

    assert (worker.holdings.outcomes, worker.holdings.processed) == ([], 4)
    stored = Execution.objects.in_bulk([e.id for e in running])
    assert (stored[good_result.id].status, stored[good_result.id].result) == ("completed", 1)
    assert (stored[good_too.id].status, stored[good_too.id].result) == ("completed", 3)
    assert stored[bad_result.id].status == "failed"
    assert "The handler's result could not be stored" in stored[bad_result.id].error
    escaped = {"nul": "before\\x00after", "lone-surrogate": "before\\ud800after"}[bad]
    assert (stored[bad_error.id].status, stored[bad_error.id].error) == ("failed", escaped)
    failures = dict(FailedExecution.objects.values_list("execution_id", "traceback"))
    assert failures.keys() == {bad_result.id, bad_error.id}
    assert failures[bad_error.id] == escaped


@pytest.mark.parametrize(
    "payload",
    [
        {"text": BAD_TEXT["nul"]},
        {"text": BAD_TEXT["lone-surrogate"]},
        {"key\x00": 1},
        ["ok", {"deep": [BAD_TEXT["nul"]]}],
    ],
    ids=["nul", "lone-surrogate", "nul-in-a-key", "nested"],
)
def test_payload_postgres_cannot_store_raises_payload_error_and_stores_nothing(payload):
    with pytest.raises(PayloadError, match="PostgreSQL cannot store") as raised:
        invoke("echo", payload)
    assert "payload" in str(raised.value)
    with pytest.raises(PayloadError, match="PostgreSQL cannot store"):
        registry.get("echo").invoke_many([{"ok": 1}, payload])
    with pytest.raises(PayloadError, match="PostgreSQL cannot store"):
        invoke("echo", payload, dedupe_key="k")
    assert Execution.objects.count() == 0


@BAD
def test_a_child_payload_postgres_cannot_store_fails_the_parent_and_starts_no_child(
    run_worker, bad
):
    handle = invoke("bad-values-child-payload", {"bad": bad})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "failed"
    assert "The payload for child 'child'" in execution.error
    assert "payload['text'] is a string holding" in execution.error
    assert Execution.objects.count() == 1  # no child
    assert not Step.objects.filter(execution=execution).exists()


@pytest.mark.parametrize(
    "value",
    ["\\u0000", "a\\\\u0000", "\U0001f600 and \ud83d\ude00", "\\ud800", "é中", ""],
    ids=["escaped-backslash", "escaped-backslashes", "surrogate-pairs", "text", "bmp", "empty"],
)
def test_text_that_only_looks_like_a_bad_escape_is_stored(run_worker, value):
    handle = invoke("echo", {"text": value, value: "key"})
    run_worker()
    assert handle.wait(1)["echo"] == payloads.loads(payloads.dumps({"text": value, value: "key"}))


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\\x00b"),
        ("a\ud800b", "a\\ud800b"),
        ("é\U0001f600", "é\U0001f600"),
        ("", ""),
    ],
)
def test_storable_text_replaces_only_what_postgres_text_cannot_hold(text, stored):
    assert payloads.storable_text(text) == stored
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::text", [payloads.storable_text(text)])
        assert cursor.fetchone()[0] == stored


@pytest.mark.slow
def test_a_worker_process_that_meets_unstorable_values_keeps_running(worker_process):
    bad = [
        invoke("bad-values-step-result", {"bad": "nul"}).id,
        invoke("bad-values-step-name", {"bad": "nul"}).id,
        invoke("bad-values-result", {"bad": "lone-surrogate"}).id,
        invoke("bad-values-exception", {"bad": "nul"}).id,
    ]
    proc = worker_process("--concurrency", "4")
    wait_until(lambda: Execution.objects.filter(pk__in=bad, status="failed").count() == 4, 30)
    good = good_executions(5)  # after the bad ones: the same process must take them
    wait_until(lambda: Execution.objects.filter(pk__in=good, status="completed").count() == 5)
    assert proc.process.poll() is None, "the worker exited"
    proc.signal()
    assert proc.wait() == 0, proc.output
    assert "Traceback" not in proc.output
    assert_completed_once(good)
    assert max(Execution.objects.filter(pk__in=bad).values_list("claims", flat=True)) <= 3
