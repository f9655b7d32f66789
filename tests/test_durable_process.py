"""Durable steps across a real worker crash."""

import signal
from collections import Counter

import pytest

from django_conductor import invoke
from django_conductor.models import Execution, Step
from tests.conftest import wait_until
from tests.testapp.models import SideEffect

pytestmark = pytest.mark.django_db(transaction=True)

SHORT_LEASE = {"CONDUCTOR_TEST_LEASE": "2", "CONDUCTOR_TEST_HEARTBEAT_INTERVAL": "0.5"}


def test_sigkill_mid_twenty_steps_committed_steps_never_rerun(worker_process):
    handle = invoke("twenty-steps", {"linger": 0.1})
    first = worker_process("--concurrency", "1", env=SHORT_LEASE)
    wait_until(lambda: SideEffect.objects.filter(kind="step").count() >= 8)
    first.signal(signal.SIGKILL)
    first.wait(10)
    committed_before_kill = set(
        Step.objects.filter(execution_id=handle.id).values_list("name", flat=True)
    )
    assert 6 <= len(committed_before_kill) < 20
    assert Execution.objects.get(pk=handle.id).status == "running"  # until the lease expires

    second = worker_process("--concurrency", "1", env=SHORT_LEASE)
    assert handle.wait(timeout=60) == sum(range(1, 21))
    second.signal(signal.SIGTERM)
    assert second.wait(10) == 0, second.output

    runs = Counter(
        int(v) for v in SideEffect.objects.filter(kind="step").values_list("value", flat=True)
    )
    assert sorted(runs) == list(range(1, 21))  # every step ran
    for name in committed_before_kill:
        assert runs[int(name.split("-")[1])] == 1, f"{name} was committed yet ran again"
    reruns = [n for n, count in runs.items() if count > 1]
    assert len(reruns) <= 1 and all(runs[n] == 2 for n in reruns)  # only the in-flight one
    execution = Execution.objects.get(pk=handle.id)
    assert (execution.attempts, execution.claims) == (2, 2)
