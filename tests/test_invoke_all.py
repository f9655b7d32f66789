"""ctx.invoke_all: children started together, the parent parked until every one has ended
and woken once, results in order; a failure raised after the others have ended. And
ctx.cancel, another call on other executions that is recorded as a step."""

import pytest

from django_conductor import invoke
from django_conductor.models import Execution, Step


def test_results_come_in_order_and_the_parent_runs_again_once(run_worker):
    handle = invoke("fans-out", {"n": 10})
    run_worker(concurrency=4)
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "completed"
    assert parent.result == [{"echo": n, "attempt": 1} for n in range(10)]
    steps = Step.objects.filter(execution=parent).order_by("id")
    assert [s.name for s in steps] == [f"all[{n}]" for n in range(10)]
    children = Execution.objects.filter(parent=parent)
    assert children.count() == 10 and {c.status for c in children} == {"completed"}
    # Claimed to start the children, and at most once more per early wake-up; never once
    # per child: it waits for the last.
    assert parent.claims < 10, parent.claims


def test_a_failing_child_fails_the_parent_after_the_others_have_ended(run_worker):
    handle = invoke("fans-out", {"n": 3, "one_fails": True})
    run_worker(concurrency=4)
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "failed"
    assert parent.error == "Child execution failed: no point retrying (child 'all[1]')"
    children = Execution.objects.filter(parent=parent)
    assert sorted(c.status for c in children) == ["completed", "completed", "completed", "failed"]
    # A retry keeps the children that completed and runs the failed one again.
    from django_conductor import retry

    assert retry(handle.id)
    (reset,) = Step.objects.filter(execution=parent, finished_at__isnull=True)
    assert reset.name == "all[1]"


def test_invoke_all_wants_task_and_payload_pairs(run_worker):
    from django_conductor.parallel import invoke_all

    with pytest.raises(ValueError, match="pairs"):
        invoke_all(None, None, None, "x", ["echo"])


@pytest.mark.slow
def test_ten_children_on_two_workers(worker_process):
    handle = invoke("fans-out", {"n": 10})
    workers = [worker_process("--burst", "--concurrency", "3") for _ in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    parent = Execution.objects.get(pk=handle.id)
    assert parent.status == "completed", [w.output for w in workers]
    assert parent.result == [{"echo": n, "attempt": 1} for n in range(10)]
    assert set(Execution.objects.filter(parent=parent).values_list("claims", flat=True)) == {1}


def test_ctx_cancel_is_a_step(run_worker):
    target = invoke("record", "later", delay=3600)
    handle = invoke("cancels-another", {"id": target.id})
    run_worker()
    assert Execution.objects.get(pk=handle.id).result is True
    cancelled = Execution.objects.get(pk=target.id)
    assert (cancelled.status, cancelled.error) == ("cancelled", "not needed any more")
    (step,) = Step.objects.filter(execution_id=handle.id)
    assert step.name == f"cancel #{target.id}" and step.result is True
