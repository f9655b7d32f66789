"""Tasks the tests run. Side effects go to SideEffect rows so tests can count them."""

from django_conductor import NonRetryableError, task

from .models import SideEffect


def record(kind: str, value: str = "") -> int:
    return SideEffect.objects.create(kind=kind, value=value).pk


@task(name="noop")
def noop(event, ctx):
    return None


@task(name="echo")
def echo(event, ctx):
    return {"echo": event.payload, "attempt": event.attempt}


@task(name="record")
def record_task(event, ctx):
    record("ran", str(event.payload))
    return event.payload


@task(name="always-fails", max_attempts=3)
def always_fails(event, ctx):
    record("attempt", str(event.attempt))
    raise ValueError("boom")


@task(name="fails-once", max_attempts=3, retry_delays=[0])
def fails_once(event, ctx):
    record("attempt", str(event.attempt))
    if event.attempt == 1:
        raise ValueError("first attempt fails")
    return "ok"


@task(name="non-retryable", max_attempts=5)
def non_retryable(event, ctx):
    raise NonRetryableError("no point retrying")


@task(name="flaky-until-flag", max_attempts=1)
def flaky_until_flag(event, ctx):
    if not SideEffect.objects.filter(kind="flag").exists():
        raise RuntimeError("flag not set yet")
    return "done"


@task(name="slow")
def slow(event, ctx):
    import time

    record("started", str(event.payload))
    time.sleep(float(event.payload or 1))
    record("finished", str(event.payload))
    return "slept"


from . import framework_tasks  # noqa: E402, F401  (Django tasks, for tests/test_backend.py)
from .bad_value_tasks import *  # noqa: E402, F403
from .batch_tasks import *  # noqa: E402, F403
from .cron_tasks import *  # noqa: E402, F403
from .durable_tasks import *  # noqa: E402, F403
from .event_tasks import *  # noqa: E402, F403
from .limit_tasks import *  # noqa: E402, F403
from .pooler_tasks import *  # noqa: E402, F403
from .process_tasks import *  # noqa: E402, F403
from .retention_tasks import *  # noqa: E402, F403
from .row_tasks import *  # noqa: E402, F403
from .telemetry_tasks import *  # noqa: E402, F403
from .testing_tasks import *  # noqa: E402, F403
from .wait_event_tasks import *  # noqa: E402, F403
from .wait_tasks import *  # noqa: E402, F403
from .window_tasks import *  # noqa: E402, F403
