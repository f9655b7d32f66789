"""The worker's listener: news of ready work on its queues wakes the claim loop, and only
news that may fill a batch sends it looking for batches, which costs statements."""

import threading

import pytest

from django_conductor import invoke
from django_conductor.worker.base import Identity
from django_conductor.worker.holdings import Holdings
from django_conductor.worker.listener import listen

from .conftest import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listening():
    """A listener thread for the queues "mail" and "rows", with its events."""
    identity = Identity("listener", "here", ["mail", "rows"], 2, ["echo", "batch-insert"])
    wake, stopping, ready, new_work = (threading.Event() for _ in range(4))
    thread = threading.Thread(
        target=listen,
        args=(identity, Holdings(), wake, stopping),
        kwargs={"ready": ready, "new_work": new_work},
        daemon=True,
    )
    thread.start()
    # Connected: it says so by asking for a look at everything announced before.
    wait_until(new_work.is_set, timeout=30)
    yield ready, new_work
    stopping.set()
    thread.join(30)


def may_fill_a_batch(ready, new_work, invoke_one):
    """Whether the news of ``invoke_one``'s work sends the loop looking for batches."""
    ready.clear()
    new_work.clear()
    invoke_one()
    wait_until(ready.is_set, timeout=30)
    return new_work.is_set()


def test_plain_work_is_news_and_only_batch_work_sends_the_loop_to_batches(listening):
    ready, new_work = listening
    assert may_fill_a_batch(ready, new_work, lambda: invoke("echo", {}, queue="mail")) is False
    assert may_fill_a_batch(ready, new_work, lambda: invoke("batch-insert", {}, queue="rows"))


def test_work_on_another_queue_is_not_news(listening):
    ready, _ = listening
    ready.clear()
    invoke("echo", {}, queue="elsewhere")
    assert not ready.wait(2.0)
