"""The claim and the idle worker's next-due search, read one priority level at a time."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from django_conductor.models import Execution
from django_conductor.registry import registry
from django_conductor.store import base, claims
from django_conductor.store.notify import connect_listener
from django_conductor.worker import Worker, claiming

pytestmark = pytest.mark.django_db(transaction=True)

TASKS = sorted(task.name for task in registry)


def invoke_at(label, priority, seconds_from_now, status="pending"):
    """An execution of ``record`` due ``seconds_from_now`` (negative: ready; None: waiting
    with no deadline), parked as ``status``."""
    handle = registry.get("record").invoke(label, priority=priority)
    run_at = None
    if seconds_from_now is not None:
        run_at = timezone.now() + timedelta(seconds=seconds_from_now)
    Execution.objects.filter(pk=handle.id).update(status=status, run_at=run_at)
    return handle.id


def test_a_claim_takes_ready_work_level_by_level_past_parked_work_and_locks_only_it():
    for n in range(20):  # parked above everything: sleeping, delayed, waiting on a child
        invoke_at(
            f"parked-{n}", 10, (3600, 3600, None)[n % 3], ("sleeping", "pending", "waiting")[n % 3]
        )
    top = [invoke_at("top-early", 5, -20), invoke_at("top-late", 5, -10)]
    invoke_at("middle-future", 3, 60)
    low = [invoke_at(f"low-{n}", 0, -30 + n) for n in range(5)]
    with connect_listener() as claimer, connect_listener() as other, claimer.transaction():
        claimed = [
            row.id
            for row in claims.claim(
                claimer.cursor(), places=3, idle=3, worker="w", lease=30.0, queues=[], tasks=TASKS
            )
        ]
        locked_elsewhere = {
            row[0]
            for row in other.execute(
                f"SELECT id FROM {base.EXECUTION} WHERE id NOT IN "
                f"(SELECT id FROM {base.EXECUTION} FOR UPDATE SKIP LOCKED)"
            )
        }
    assert claimed == [*top, low[0]]
    assert locked_elsewhere == set(claimed)


def test_an_idle_worker_waits_for_the_next_due_execution_below_parked_work(settings):
    settings.CONDUCTOR_POLL_INTERVAL = 3600
    for n in range(10):
        invoke_at(f"parked-{n}", 10, 1800, "sleeping")
    invoke_at("waiting", 10, None, "waiting")
    invoke_at("soonest", 0, 600)
    wait = Worker(install_signal_handlers=False, worker_id="idle").claiming.idle_wait()
    assert 590 < wait <= 600


def test_an_idle_worker_with_nothing_due_waits_the_poll_interval(settings):
    settings.CONDUCTOR_POLL_INTERVAL = 7
    invoke_at("waiting", 0, None, "waiting")
    assert Worker(install_signal_handlers=False, worker_id="idle").claiming.idle_wait() == 7


def test_a_claim_held_ahead_of_a_thread_uses_no_attempt_and_is_started_at_its_claim():
    ids = [invoke_at(f"ready-{n}", 0, -10 + n) for n in range(3)]
    with connect_listener() as claimer:
        claims.claim(
            claimer.cursor(), places=3, idle=1, worker="w", lease=30.0, queues=[], tasks=TASKS
        )
    rows = Execution.objects.filter(pk__in=ids).order_by("id")
    assert [(e.attempts, e.prefetched) for e in rows] == [(1, False), (0, True), (0, True)]
    assert all(e.started_at is not None for e in rows)


def test_news_of_ready_work_ends_the_wait_for_outcomes_while_a_thread_is_free(monkeypatch):
    """An ended attempt's outcome waits a moment for others to share its write; a pickup
    does not wait with it, unless no thread could run the work yet."""
    monkeypatch.setattr(claiming, "BATCH_WINDOW", 60.0)
    loop = Worker(install_signal_handlers=False, worker_id="gathering").claiming
    loop.holdings.running = {(1, 1): None, (2, 1): None}  # two claims held,
    loop.holdings.outcomes = [None]  # one of them ended
    loop.holdings.assigned = loop.identity.concurrency  # every thread has a job
    gathered = threading.Event()
    threading.Thread(target=lambda: (loop.gather_outcomes(), gathered.set()), daemon=True).start()
    loop.ready.set()  # as the listener does on news of ready work
    loop.wake.set()
    assert not gathered.wait(0.5)  # no thread is free: the outcomes wait on together
    loop.holdings.assigned -= 1
    loop.wake.set()  # as a thread does when its attempt ends
    assert gathered.wait(30)
