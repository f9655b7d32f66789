"""Tasks for waiting on children, cancelling and retrying; side effects are SideEffect rows."""

from datetime import timedelta

from django_conductor import ChildExecutionFailed, ChildExecutionTimeout, task

from .models import SideEffect


def effect(kind, value=""):
    SideEffect.objects.create(kind=kind, value=str(value))
    return kind


@task(name="timeout-then-fallback")
def timeout_then_fallback(event, ctx):
    """Takes one branch or the other after a child with a deadline, then sleeps: the
    replay after the sleep must take the same branch again."""
    try:
        value = ctx.invoke(
            "slow-child", "record", "child", timeout=timedelta(minutes=5), queue="children"
        )
    except ChildExecutionTimeout:
        ctx.step("fallback", effect, "fallback")
        value = "fallback"
    else:
        ctx.step("use-child", effect, "use-child")
    ctx.sleep("settle", timedelta(hours=1))
    return value


@task(name="cancels-itself-then-sleeps")
def cancels_itself_then_sleeps(event, ctx):
    """Its cancel commits after the sleep's release point was passed, before the park."""
    from django_conductor import cancel

    ctx.step("cancel-me", lambda: cancel(event.execution_id, reason="stop before the sleep"))
    ctx.sleep("long", timedelta(days=1))
    ctx.step("after", effect, "after-sleep")


@task(name="cancels-itself-then-invokes")
def cancels_itself_then_invokes(event, ctx):
    """Its cancel commits after the invoke's release point, before the child is created."""
    from django_conductor import cancel

    ctx.step("cancel-me", lambda: cancel(event.execution_id, reason="stop before the child"))
    return ctx.invoke("child", "record", "escaped")


@task(name="compensates-then-fails", max_attempts=1)
def compensates_then_fails(event, ctx):
    """Survives its child's failure by refunding, then fails at a later step of its own."""
    try:
        ctx.invoke("pay", "child-fails", {})
    except ChildExecutionFailed:
        ctx.step("refund", effect, "refund")

    def ship():
        effect("ship-try")
        if not SideEffect.objects.filter(kind="flag", value="ship-fixed").exists():
            raise RuntimeError("carrier down")
        return "shipped"

    return ctx.step("ship", ship)
