"""The test helpers for users' own tests (django_conductor.testing), on real PostgreSQL:
drain, run_one, eager mode, advance, the worker thread, the assertions and the pytest
plugin."""

import os
from datetime import timedelta
from importlib.metadata import entry_points

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.db.models import DateTimeField

from django_conductor import ConductorError, ExecutionFailed, emit, invoke, schedule
from django_conductor.models import Execution, Schedule, Step, WorkerHeartbeat
from django_conductor.testing import (
    DrainLimitExceeded,
    NotRunnable,
    advance,
    assert_invoked,
    assert_not_invoked,
    drain,
    eager,
    run_one,
    worker_thread,
)
from django_conductor.testing.time_travel import LEFT_ALONE, MOVED
from tests.conftest import ROOT, database_now, effects, wait_until
from tests.testapp.testing_tasks import StopTheTest, backs_off, naps, runs_away, signs_up

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.django_db(transaction=True)


# -- drain ---------------------------------------------------------------------------------


def test_drain_runs_a_tree_to_the_end_and_returns_what_ran():
    handle = signs_up.invoke({"email": "a@b.c"})
    ran = drain()
    child = Execution.objects.get(parent_id=handle.id)
    # The parent parks on its child, the child runs, the parent resumes: three attempts.
    assert [execution.id for execution in ran] == [handle.id, child.id]
    assert ran.statuses() == {handle.id: "completed", child.id: "completed"}
    assert ran.attempts == 3
    assert handle.wait(1) == {"user": 7, "doubled": 42}
    assert effects("welcome") == ["a@b.c"]
    assert WorkerHeartbeat.objects.count() == 0  # the drain's worker row is gone


def test_drain_with_nothing_ready_runs_nothing():
    delayed = invoke("echo", 1, delay=3600)
    ran = drain()
    assert list(ran) == []
    assert ran.attempts == 0
    assert Execution.objects.get(pk=delayed.id).status == "pending"


def test_drain_stops_at_its_limit_and_hands_the_next_back_unused():
    runs_away.invoke(1)
    with pytest.raises(DrainLimitExceeded, match=r"ran 5 attempts.*runs-away"):
        drain(limit=5)
    assert Execution.objects.filter(task_name="runs-away", status="completed").count() == 5
    left = Execution.objects.get(task_name="runs-away", status="pending")
    assert left.attempts == 0  # the claim past the limit cost it nothing
    assert left.lease_owner is None


def test_drain_of_some_queues_leaves_the_others():
    other = invoke("echo", 1, queue="other")
    mine = invoke("echo", 2)
    assert [e.id for e in drain(queues=["default"])] == [mine.id]
    assert Execution.objects.get(pk=other.id).status == "pending"
    with pytest.raises(TypeError, match="list of queue names"):
        drain(queues="other")
    assert Execution.objects.get(pk=other.id).status == "pending"


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, "10"])
def test_drain_refuses_a_bad_limit(limit):
    invoke("echo", 1)
    with pytest.raises(ValueError, match="limit of at least 1"):
        drain(limit=limit)
    assert Execution.objects.get().status == "pending"


def test_drain_refuses_to_run_inside_a_transaction():
    with transaction.atomic():
        handle = invoke("echo", 1)
        with pytest.raises(ConductorError, match="cannot run inside a transaction"):
            drain()
    assert Execution.objects.get(pk=handle.id).status == "pending"


def test_a_test_failure_raised_in_a_handler_goes_up_and_costs_no_attempt():
    # Not a handler error (pytest's own failures, ^C): the execution is given back unused.
    handle = invoke("stops-the-test")
    with pytest.raises(StopTheTest):
        drain()
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.status, execution.attempts, execution.lease_owner) == ("pending", 0, None)


# -- run_one -------------------------------------------------------------------------------


def test_run_one_runs_that_execution_only():
    first = invoke("echo", 1)
    second = invoke("echo", 2, priority=10)  # next in line, yet not run
    execution = run_one(second)
    assert execution.status == "completed"
    assert execution.result == {"echo": 2, "attempt": 1}
    assert Execution.objects.get(pk=first.id).status == "pending"


def test_run_one_steps_through_a_parent_and_its_child():
    handle = signs_up.invoke({"email": "a@b.c"})
    assert run_one(handle.id).status == "waiting"
    child = Execution.objects.get(parent_id=handle.id)
    assert run_one(child).status == "completed"
    assert run_one(handle).status == "completed"
    assert handle.wait(1) == {"user": 7, "doubled": 42}


def test_run_one_runs_a_backing_off_retry_at_once():
    handle = backs_off.invoke()
    assert run_one(handle).status == "pending"  # failed attempt 1; 600 s of backoff
    execution = run_one(handle)
    assert execution.status == "completed"
    assert execution.attempts == 2


def test_run_one_refuses_what_cannot_run_and_changes_nothing():
    handle = naps.invoke()
    run_one(handle)
    with pytest.raises(NotRunnable, match=r"is sleeping until .*advance\(\)"):
        run_one(handle)
    assert Execution.objects.get(pk=handle.id).status == "sleeping"
    done = invoke("echo", 1)
    run_one(done)
    with pytest.raises(NotRunnable, match="is completed"):
        run_one(done)
    with pytest.raises(NotRunnable, match="does not exist"):
        run_one(10**9)


# -- eager mode ----------------------------------------------------------------------------


def test_eager_invoke_runs_steps_and_children_before_it_returns():
    with eager():
        handle = signs_up.invoke({"email": "a@b.c"})
        assert handle.status() == "completed"
    assert handle.wait(0) == {"user": 7, "doubled": 42}
    assert Execution.objects.get(parent_id=handle.id).status == "completed"
    assert Step.objects.filter(execution_id=handle.id).count() == 3


def test_eager_is_off_outside_its_block():
    with eager():
        pass
    handle = invoke("echo", 1)
    assert handle.status() == "pending"


def test_eager_failure_retries_as_on_a_worker_after_its_backoff():
    with eager():
        handle = backs_off.invoke()
        # Attempt 1 failed; the retry waits out its 600 s backoff, as it would on a worker.
        assert handle.status() == "pending"
        execution = Execution.objects.get(pk=handle.id)
        assert execution.error == "RuntimeError: first attempt fails"
        advance(timedelta(seconds=600))
        drain()
    assert handle.wait(0) == 2
    assert effects("backs-off") == ["1", "2"]


def test_eager_failure_for_good_raises_from_the_handle():
    with eager():
        handle = invoke("non-retryable")
    with pytest.raises(ExecutionFailed, match="no point retrying"):
        handle.wait(0)


def test_eager_sleep_parks_until_advanced():
    with eager():
        handle = naps.invoke()
    assert handle.status() == "sleeping"
    assert effects("after-nap") == []
    advance(timedelta(hours=1))
    drain()
    assert handle.wait(0) == "rested"
    assert effects("before-nap") == [""]


def test_eager_emit_runs_the_subscribers():
    with eager():
        handles = emit("order.paid", {"id": 1, "amount": 5, "region": "us"})
    assert [h.status() for h in handles] == ["completed"]
    assert_invoked("on-paid", {"id": 1, "amount": 5, "region": "us"}, status="completed")


def test_eager_invoke_inside_a_transaction_runs_once_it_commits():
    with eager():
        with transaction.atomic():
            handle = invoke("echo", 1)
            assert Execution.objects.get(pk=handle.id).status == "pending"
        assert handle.status() == "completed"


def test_eager_emit_wakes_a_wait_for_the_event_and_runs_it_on():
    with eager():
        handle = invoke("awaits-approval", {"order_id": 9})
        assert handle.status() == "waiting"
        emit("order.approved", {"order_id": 9, "by": "ann"})
    assert handle.wait(0) == {"order_id": 9, "by": "ann"}


@pytest.mark.django_db(transaction=False)
def test_eager_in_a_test_transaction_is_refused_before_anything_is_stored():
    with eager(), pytest.raises(ConductorError, match="transactional test"):
        invoke("echo", 1)
    assert not Execution.objects.exists()


def test_eager_runaway_work_hits_its_limit():
    with eager(limit=3), pytest.raises(DrainLimitExceeded):
        runs_away.invoke(1)


def test_eager_invoke_as_a_decorator():
    @eager()
    def invoked_eagerly():
        return invoke("echo", 1)

    assert invoked_eagerly().status() == "completed"


# -- advance -------------------------------------------------------------------------------


def test_advance_makes_a_sleep_due_moving_its_wake_time_and_run_at_together():
    handle = naps.invoke()
    drain()
    before = Step.objects.get(execution_id=handle.id, name="nap").wake_at
    advance(timedelta(minutes=59))
    assert list(drain()) == []  # a minute to go
    advance(timedelta(minutes=1))
    assert Step.objects.get(execution_id=handle.id, name="nap").wake_at == before - timedelta(
        hours=1
    )
    assert [e.status for e in drain()] == ["completed"]
    assert effects("after-nap") == [""]


def test_advance_makes_a_retry_backoff_due():
    handle = backs_off.invoke()
    drain()
    assert Execution.objects.get(pk=handle.id).status == "pending"
    advance(540)
    assert list(drain()) == []  # a minute to go
    advance(60)
    drain()
    assert handle.wait(0) == 2


def test_advance_makes_a_delayed_run_due():
    handle = invoke("echo", 1, delay=timedelta(days=2))
    advance(timedelta(days=2))
    drain()
    assert handle.wait(0) == {"echo": 1, "attempt": 1}


def test_advance_makes_a_cron_tick_due_and_the_next_tick_follows():
    schedule("tick", "hourly", "0 * * * *", payload={"n": 1})
    first = Execution.objects.get(task_name="tick")
    assert list(drain()) == []  # its tick is up to an hour away
    advance(timedelta(hours=1))
    ran = drain()
    assert [e.id for e in ran] == [first.id]
    assert ran[0].status == "completed"
    following = Execution.objects.get(task_name="tick", status="pending")
    assert following.scheduled_at > database_now()
    hourly = Schedule.objects.get(name="hourly")
    assert hourly.next_run_at == following.scheduled_at
    assert hourly.last_run_at == first.scheduled_at - timedelta(hours=1)


def test_advance_makes_a_debounced_run_due():
    handle = invoke("echo", 1, debounce=timedelta(hours=1))
    assert list(drain()) == []  # it runs at the next hour's start
    advance(timedelta(hours=1))
    assert [e.id for e in drain()] == [handle.id]


def test_advance_moves_every_recorded_time_but_the_workers():
    # Every DateTimeField of the models is either moved or left alone on purpose.
    for model in apps.get_app_config("django_conductor").get_models():
        times = {f.name for f in model._meta.get_fields() if isinstance(f, DateTimeField)}
        covered = set(MOVED.get(model, ())) | set(LEFT_ALONE.get(model, ()))
        assert times == covered, model.__name__


def test_advance_refuses_a_step_back_or_a_bad_value():
    handle = invoke("echo", 1, delay=60)
    run_at = Execution.objects.get(pk=handle.id).run_at
    with pytest.raises(ValueError, match="forward only"):
        advance(timedelta(seconds=-1))
    with pytest.raises(TypeError, match="timedelta or a number"):
        advance("1 hour")
    with pytest.raises(ValueError, match="finite"):
        advance(float("nan"))
    assert Execution.objects.get(pk=handle.id).run_at == run_at


def test_advance_wakes_a_worker_thread_for_what_fell_due():
    handle = naps.invoke()
    with worker_thread(concurrency=1):
        assert _wait_for_status(handle.id, "sleeping")
        advance(timedelta(hours=1))
        assert handle.wait(20) == "rested"


def _wait_for_status(execution_id, status, timeout=20.0):
    wait_until(lambda: Execution.objects.get(pk=execution_id).status == status, timeout)
    return True


# -- assertions ----------------------------------------------------------------------------


def test_assert_invoked_matches_payloads_as_json():
    invoke("echo", {"ids": (1, 2)})
    invoke("echo", {"ids": [3]})
    found = assert_invoked("echo", {"ids": [1, 2]})
    assert len(found) == 1
    assert_invoked("echo", count=2)
    assert_not_invoked("echo", {"ids": [4]})
    assert_not_invoked(naps)


def test_assert_invoked_says_what_was_invoked_instead():
    invoke("echo", {"id": 1})
    with pytest.raises(AssertionError, match=r"'echo'.*with payload \{'id': 2\}.*\{'id': 1\}"):
        assert_invoked("echo", {"id": 2})
    with pytest.raises(AssertionError, match=r"2 times.*was 1 times"):
        assert_invoked("echo", count=2)
    with pytest.raises(AssertionError, match="not to be invoked"):
        assert_not_invoked("echo")


# -- the pytest plugin ---------------------------------------------------------------------


def test_the_plugin_is_registered_by_an_entry_point():
    names = {e.value for e in entry_points(group="pytest11")}
    assert "django_conductor.testing.pytest_plugin" in names


USER_SUITE = """
import pytest
from datetime import timedelta
from django_conductor import invoke
from tests.testapp.testing_tasks import naps, signs_up


def test_drain_and_assert(conductor):
    signs_up.invoke({"email": "u@example.com"})
    ran = conductor.drain()
    assert len(ran) == 2
    conductor.assert_invoked("double", 21, status="completed")


def test_time_travel(conductor):
    handle = naps.invoke()
    conductor.drain()
    conductor.advance(timedelta(hours=1), drain=True)
    assert handle.wait(0) == "rested"


def test_eager(conductor_eager):
    assert invoke("echo", 1).status() == "completed"


def test_worker_thread(conductor_worker):
    assert invoke("echo", 2).wait(20) == {"echo": 2, "attempt": 1}


def test_a_failing_assertion(conductor):
    conductor.assert_invoked("echo")
"""

USER_CONFTEST = '''
import pytest


@pytest.fixture(scope="session")
def django_db_setup():
    """The outer test's database, migrated already."""
'''


def _user_suite(pytester, *args):
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user=USER_SUITE)
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CONDUCTOR_DATABASE_NAME": connection.settings_dict["NAME"],
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    for key, value in env.items():
        pytester._monkeypatch.setenv(key, value)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_a_user_suite_uses_the_fixtures_and_assertions(pytester):
    result = _user_suite(pytester)
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*Expected 'echo' to be invoked at least once*"])


def test_without_pytest_django_the_plugin_loads_and_its_fixtures_say_why_not(pytester):
    pytester.makepyfile(
        test_plain="def test_plain():\n    assert True\n\ndef test_fixture(conductor):\n    pass\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:django", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixtures need pytest-django*"])
