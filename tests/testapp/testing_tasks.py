"""Tasks for the test helpers' tests (tests/test_testing.py)."""

from datetime import timedelta

from django_conductor import task

from .models import SideEffect

__all__ = ["StopTheTest", "backs_off", "naps", "runs_away", "signs_up", "stops_the_test"]


class StopTheTest(BaseException):
    """Stands for pytest's own failures and ^C: errors that are not the handler's."""


def effect(kind, value=""):
    SideEffect.objects.create(kind=kind, value=str(value))
    return kind


@task(name="signs-up")
def signs_up(event, ctx):
    user = ctx.step("create-user", lambda: {"id": 7, "email": event.payload["email"]})
    ctx.step("welcome", effect, "welcome", user["email"])
    doubled = ctx.invoke("double-it", "double", 21)
    return {"user": user["id"], "doubled": doubled}


@task(name="naps")
def naps(event, ctx):
    ctx.step("before", effect, "before-nap")
    ctx.sleep("nap", timedelta(hours=1))
    ctx.step("after", effect, "after-nap")
    return "rested"


@task(name="backs-off", max_attempts=2, retry_delays=[600])
def backs_off(event, ctx):
    effect("backs-off", event.attempt)
    if event.attempt == 1:
        raise RuntimeError("first attempt fails")
    return event.attempt


@task(name="runs-away")
def runs_away(event, ctx):
    ctx.step("again", lambda: runs_away.invoke(event.payload + 1).id)


@task(name="stops-the-test")
def stops_the_test(event, ctx):
    raise StopTheTest()
