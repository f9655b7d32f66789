from django_conductor import invoke
from django_conductor.models import Execution


def test_echo_runs_to_completion(run_worker):
    handle = invoke("echo", {"a": 1})
    run_worker()
    execution = Execution.objects.get(pk=handle.id)
    assert execution.status == "completed"
    assert execution.result == {"echo": {"a": 1}, "attempt": 1}
    assert handle.wait(1) == {"echo": {"a": 1}, "attempt": 1}
