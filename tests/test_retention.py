"""Retention: a task's remove_on_complete / remove_on_fail and the project's
CONDUCTOR_RETENTION decide how long finished executions stay; pruning removes whole finished
trees from their roots, with their steps and failure records, in batches that skip what
another session holds; the command reports per task and status; a worker process prunes."""

import signal
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models.functions import Now
from django.test import override_settings

from django_conductor import retention
from django_conductor.checks import check_settings, check_tasks
from django_conductor.definition import Task
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.store.base import EXECUTION, STEP
from django_conductor.store.retention import PRUNE_LOCK
from tests.testapp.retention_tasks import drop_when_done

from .conftest import wait_until

DAY = timedelta(days=1)


def finished(factory, task_name="echo", status="completed", ago=timedelta(seconds=1), **fields):
    """A finished execution whose finished_at is ``ago`` before the database's now()."""
    execution = factory(task_name=task_name, status=status, **fields)
    Execution.objects.filter(pk=execution.pk).update(finished_at=Now() - ago)
    return execution


def exists(*executions):
    """Whether each execution (or handle) is still stored."""
    ids = [getattr(e, "pk", None) or e.id for e in executions]
    present = set(Execution.objects.filter(pk__in=ids).values_list("pk", flat=True))
    return [pk in present for pk in ids]


def test_remove_on_complete_removes_the_execution_and_its_steps(db, execution_factory):
    dropped = finished(execution_factory, "drop-when-done")
    Step.objects.create(execution=dropped, name="work", result=1)
    other = finished(execution_factory, "echo")  # the project's 7 days for echo

    pruned = retention.prune()

    assert exists(dropped, other) == [False, True]
    assert not Step.objects.filter(execution_id=dropped.pk).exists()
    assert pruned.executions == {("drop-when-done", "completed"): 1}


def test_a_timedelta_keeps_the_execution_that_long_after_it_finished(db, execution_factory):
    young = finished(execution_factory, "keep-an-hour", ago=timedelta(minutes=59))
    old = finished(execution_factory, "keep-an-hour", ago=timedelta(minutes=61))
    retention.prune()
    assert exists(young, old) == [True, False]


def test_remove_on_fail_takes_failed_and_cancelled_with_their_failure_records(
    db, execution_factory, failed_execution_factory
):
    failed = finished(execution_factory, "keep-an-hour", "failed")
    failure = failed_execution_factory(execution=failed, task_name="keep-an-hour")
    cancelled = finished(execution_factory, "keep-an-hour", "cancelled")
    completed = finished(execution_factory, "keep-an-hour", "completed")  # kept an hour
    echo_failed = finished(execution_factory, "echo", "failed")  # the project's 30 days

    retention.prune()

    assert exists(failed, cancelled, completed, echo_failed) == [False, False, True, True]
    assert not FailedExecution.objects.filter(pk=failure.pk).exists()


def test_the_project_default_keeps_completed_7_days_and_failed_or_cancelled_30(
    db, execution_factory
):
    kept = [
        finished(execution_factory, "echo", "completed", ago=6 * DAY),
        finished(execution_factory, "echo", "failed", ago=29 * DAY),
        finished(execution_factory, "echo", "cancelled", ago=29 * DAY),
    ]
    gone = [
        finished(execution_factory, "echo", "completed", ago=8 * DAY),
        finished(execution_factory, "echo", "failed", ago=31 * DAY),
        finished(execution_factory, "echo", "cancelled", ago=31 * DAY),
        # A task no code defines any more follows the project's rule.
        finished(execution_factory, "renamed-long-ago", "completed", ago=8 * DAY),
    ]
    live = execution_factory(task_name="echo", status="pending", created_at=Now() - 90 * DAY)

    retention.prune()

    assert exists(*kept, live) == [True] * 4
    assert exists(*gone) == [False] * 4


def test_the_setting_overrides_the_defaults_and_none_keeps_for_ever(db, execution_factory):
    completed = finished(execution_factory, "echo", "completed", ago=365 * DAY)
    failed = finished(execution_factory, "echo", "failed", ago=2 * DAY)
    cancelled = finished(execution_factory, "echo", "cancelled", ago=2 * DAY)
    setting = {"completed": None, "failed": DAY}  # cancelled follows failed
    with override_settings(CONDUCTOR_RETENTION=setting):
        retention.prune()
    assert exists(completed, failed, cancelled) == [True, False, False]


def test_a_task_option_overrides_the_setting_for_that_task_only(db, execution_factory):
    own = finished(execution_factory, "drop-when-done", "completed")
    other = finished(execution_factory, "echo", "completed", ago=365 * DAY)
    with override_settings(CONDUCTOR_RETENTION={"completed": None}):
        retention.prune()
    assert exists(own, other) == [False, True]


def tree(factory, *, root_status="completed", child_status="completed", ago=30 * DAY):
    """A root with a child and a grandchild; the root's invoke step names the child."""
    root = finished(factory, "parent-of-one", root_status, ago=ago)
    child = factory(task_name="echo", status=child_status, parent=root, parent_step="child")
    grandchild = finished(factory, "echo", "completed", parent=child, parent_step="g", ago=ago)
    if child_status in ("completed", "failed", "cancelled"):
        Execution.objects.filter(pk=child.pk).update(finished_at=Now() - ago)
    Step.objects.create(execution=root, name="child", kind="invoke", child=child)
    Step.objects.create(execution=child, name="g", kind="invoke", child=grandchild)
    return root, child, grandchild


def test_a_finished_tree_goes_whole_from_its_root(db, execution_factory):
    nodes = tree(execution_factory)
    pruned = retention.prune()
    assert exists(*nodes) == [False, False, False]
    assert not Step.objects.filter(execution_id__in=[n.pk for n in nodes]).exists()
    assert pruned.total == 3
    assert sum(pruned.roots.values()) == 1


def test_a_root_with_an_unfinished_execution_below_it_is_never_removed(db, execution_factory):
    # The root failed while its child still runs (its end does not wait for the child).
    blocked = tree(execution_factory, root_status="failed", child_status="running", ago=90 * DAY)
    behind = finished(execution_factory, "parent-of-one", "failed", ago=60 * DAY)  # not held back
    retention.prune(batch_size=1)
    assert exists(*blocked) == [True, True, True]
    assert exists(behind) == [False]

    Execution.objects.filter(pk=blocked[1].pk).update(status="failed", finished_at=Now())
    retention.prune()
    assert exists(*blocked) == [False, False, False]


def test_a_child_goes_with_its_root_not_before(db, execution_factory):
    root = finished(execution_factory, "echo", "completed")  # the root is young
    child = finished(execution_factory, "drop-when-done", parent=root, parent_step="c", ago=DAY)
    retention.prune()
    assert exists(root, child) == [True, True]


def test_batches_drain_everything_due(db, execution_factory):
    due = [finished(execution_factory, "drop-when-done") for _ in range(5)]
    pruned = retention.prune(batch_size=2, pause=0)
    assert exists(*due) == [False] * 5
    assert pruned.batches == 3


def test_a_dry_run_says_what_would_go_and_removes_nothing(db, execution_factory):
    nodes = tree(execution_factory)
    young = finished(execution_factory, "echo")
    found = retention.due()
    assert found.executions == {("parent-of-one", "completed"): 1, ("echo", "completed"): 2}
    assert exists(*nodes, young) == [True] * 4


def test_the_command_reports_per_task_and_status(db, execution_factory):
    finished(execution_factory, "drop-when-done")
    finished(execution_factory, "keep-an-hour", "failed")
    finished(execution_factory, "keep-an-hour", "failed")

    dry = StringIO()
    call_command("conductor_prune", "--dry-run", stdout=dry)
    assert dry.getvalue().splitlines() == [
        "Would remove 1 completed executions of drop-when-done",
        "Would remove 2 failed executions of keep-an-hour",
        "Would remove 3 executions in all.",
    ]
    assert Execution.objects.count() == 3

    out = StringIO()
    call_command("conductor_prune", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Removed 3 executions in all."
    assert Execution.objects.count() == 0


def other_session():
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
        autocommit=True,
    )


def test_a_tree_another_session_holds_is_skipped_without_waiting(
    transactional_db, execution_factory
):
    held = finished(execution_factory, "drop-when-done")
    free = finished(execution_factory, "drop-when-done")
    with other_session() as other, other.transaction():
        other.execute(
            "SELECT 1 FROM django_conductor_execution WHERE id = %s FOR UPDATE", [held.pk]
        )
        with connection.cursor() as cursor:  # a wait would fail the prune, not hang the test
            cursor.execute("SET lock_timeout = '5s'")
        retention.prune()
        assert exists(held, free) == [True, False]
    retention.prune()
    assert exists(held) == [False]


def test_only_one_session_prunes_at_a_time(transactional_db, execution_factory):
    due = finished(execution_factory, "drop-when-done")
    with other_session() as other:
        other.execute("SELECT pg_advisory_lock(%s)", [PRUNE_LOCK])
        assert retention.prune() is None
        assert exists(due) == [True]
        other.execute("SELECT pg_advisory_unlock(%s)", [PRUNE_LOCK])
    assert retention.prune().total == 1


class BetweenBatches:
    """A ``stopping`` event whose pauses between batches run ``probe`` instead of waiting."""

    def __init__(self, probe):
        self.probe = probe

    def is_set(self):
        return False

    def wait(self, timeout=None):
        self.probe()
        return False


def test_the_pruning_lock_is_let_go_between_batches(transactional_db, execution_factory):
    """Held per batch's transaction, never by the session: a transaction pooler hands the
    server connection to another client after each transaction, and a session lock with it."""
    due = [finished(execution_factory, "drop-when-done") for _ in range(3)]
    free_between = []
    with other_session() as other:

        def probe():
            with other.transaction():
                taken = other.execute("SELECT pg_try_advisory_xact_lock(%s)", [PRUNE_LOCK])
                free_between.append(taken.fetchone()[0])

        pruned = retention.prune(batch_size=1, stopping=BetweenBatches(probe))
    assert pruned.batches == 4 and exists(*due) == [False] * 3  # the last finds none left
    assert free_between == [True, True, True]


def test_a_pass_leaves_the_rest_to_a_session_that_prunes_between_its_batches(
    transactional_db, execution_factory
):
    due = [finished(execution_factory, "drop-when-done") for _ in range(3)]
    with other_session() as other:

        def probe():  # another pruner's batch is under way when this pass's next one starts
            other.execute("SELECT pg_try_advisory_lock(%s)", [PRUNE_LOCK])

        pruned = retention.prune(batch_size=1, stopping=BetweenBatches(probe))
        assert pruned.batches == 1 and pruned.total == 1
        assert exists(*due).count(True) == 2
        other.execute("SELECT pg_advisory_unlock(%s)", [PRUNE_LOCK])
    assert retention.prune().total == 2


def test_the_admin_does_not_break_on_pruned_executions(admin_client, execution_factory):
    pruned = finished(execution_factory, "drop-when-done")
    retention.prune()
    page = admin_client.get(f"/admin/django_conductor/execution/{pruned.pk}/change/")
    assert page.status_code == 302  # "does not exist", back to the list
    assert admin_client.get("/admin/django_conductor/execution/").status_code == 200
    assert admin_client.get("/admin/django_conductor/failedexecution/").status_code == 200


@pytest.mark.parametrize(
    "value", [1, 0.5, "yes", None, timedelta(0), timedelta(seconds=-1), [True]]
)
def test_bad_retention_options_are_reported(value, clean_registry):
    def handler(event, ctx):
        pass

    for option in ("remove_on_complete", "remove_on_fail"):
        bad = Task(handler, "bad-retention", **{option: value})
        assert bad.errors == [
            f"{option} must be True, False or a positive timedelta, not {value!r}"
        ]


def test_good_retention_options_pass_the_checks(clean_registry):
    from django_conductor import task

    @task(name="drops", remove_on_complete=True, remove_on_fail=timedelta(hours=1))
    def drops(event, ctx):
        pass

    assert [error for error in check_tasks() if error.obj is drops] == []


@pytest.mark.parametrize(
    "setting",
    [
        timedelta(days=1),
        {"complete": timedelta(days=1)},
        {"failed": -1},
        {"completed": "7 days"},
    ],
)
def test_e004_a_bad_retention_setting(setting):
    with override_settings(CONDUCTOR_RETENTION=setting):
        errors = check_settings()
    assert [error.id for error in errors] == ["django_conductor.E004"]
    assert "CONDUCTOR_RETENTION" in errors[0].msg


@pytest.mark.parametrize("interval", [0, -1, "60"])
def test_e004_a_bad_prune_interval(interval):
    with override_settings(CONDUCTOR_PRUNE_INTERVAL=interval):
        assert [error.id for error in check_settings()] == ["django_conductor.E004"]


def test_good_retention_settings_pass(settings):
    settings.CONDUCTOR_RETENTION = {"completed": 3600, "failed": None, "cancelled": DAY}
    settings.CONDUCTOR_PRUNE_INTERVAL = None
    assert check_settings() == []


@pytest.mark.slow
def test_a_worker_process_prunes_what_ran_and_what_is_due(worker_process, execution_factory):
    old = finished(execution_factory, "echo", ago=8 * DAY)
    kept = finished(execution_factory, "echo", ago=6 * DAY)
    handle = drop_when_done.invoke({"n": 1})
    proc = worker_process("--concurrency", "2", env={"CONDUCTOR_TEST_PRUNE_INTERVAL": "0.5"})

    # The invoked one runs, completes, and is removed by a later pass; the old one goes too.
    wait_until(lambda: exists(old) == [False] and exists(handle) == [False], timeout=60)
    assert exists(kept) == [True]
    assert "Pruned" in proc.output_so_far()
    proc.signal()
    assert proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_pruning_off_leaves_everything(worker_process, execution_factory):
    old = finished(execution_factory, "echo", ago=8 * DAY)
    handle = drop_when_done.invoke({"n": 1})
    proc = worker_process("--burst")
    assert proc.wait(timeout=60) == 0
    assert Execution.objects.get(pk=handle.id).status == "completed"
    assert exists(old) == [True]


#: ``%s`` finished trees 40 days old: a root with a step that invoked its one child.
OLD_TREES = f"""
WITH roots AS (
    INSERT INTO {EXECUTION} (task_name, payload, status, started_at, finished_at)
    SELECT 'echo', '{{}}', 'completed', now() - interval '40 days', now() - interval '40 days'
    FROM generate_series(1, %s)
    RETURNING id
), children AS (
    INSERT INTO {EXECUTION} (task_name, payload, status, started_at, finished_at, parent_id,
        parent_step)
    SELECT 'echo', '{{}}', 'completed', now() - interval '40 days', now() - interval '40 days',
        id, 'child'
    FROM roots
    RETURNING id, parent_id
)
INSERT INTO {STEP} (execution_id, name, kind, child_id, finished_at)
SELECT parent_id, 'child', 'invoke', id, now() - interval '40 days' FROM children
"""


def torn_trees():
    """Roots left without their child or its step, and children or steps left without
    their root: what a pruner killed between two deletes of one tree would leave."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT
            (SELECT count(*) FROM {EXECUTION} r WHERE r.parent_id IS NULL
               AND NOT EXISTS (SELECT FROM {EXECUTION} c WHERE c.parent_id = r.id)),
            (SELECT count(*) FROM {EXECUTION} r WHERE r.parent_id IS NULL
               AND NOT EXISTS (SELECT FROM {STEP} s WHERE s.execution_id = r.id)),
            (SELECT count(*) FROM {EXECUTION} c WHERE c.parent_id IS NOT NULL
               AND NOT EXISTS (SELECT FROM {EXECUTION} r WHERE r.id = c.parent_id))"""
        )
        return cursor.fetchone()


@pytest.mark.slow
def test_a_pruner_killed_mid_pass_leaves_each_tree_whole_or_gone(worker_process):
    trees = 6_000  # six batches, with a pause after each at least twice its length
    with connection.cursor() as cursor:
        cursor.execute(OLD_TREES, [trees])
    roots = Execution.objects.filter(parent__isnull=True)
    pruner = worker_process(command="conductor_prune")
    wait_until(lambda: roots.count() < trees, timeout=60)  # its first batches are gone
    pruner.signal(signal.SIGKILL)
    pruner.wait(timeout=30)

    # One statement, one snapshot: a batch whose COMMIT the killed pruner had sent may
    # land between two separate counts.
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM {EXECUTION} WHERE parent_id IS NULL), "
            f"(SELECT count(*) FROM {EXECUTION}), (SELECT count(*) FROM {STEP})"
        )
        left, executions, steps = cursor.fetchone()
    assert 0 < left < trees, "the pruner finished before it was killed; prune more trees"
    assert (executions, steps) == (2 * left, left)
    assert torn_trees() == (0, 0, 0)

    # A later pass removes the rest, once the killed pruner's server session has let go of
    # the pruning lock it may still hold for a moment.
    wait_until(lambda: retention.prune(pause=0) is not None, timeout=60)
    assert Execution.objects.count() == Step.objects.count() == 0
