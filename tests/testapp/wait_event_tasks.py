"""Tasks that wait for custom events, for the event-wait tests."""

from django_conductor import EventTimeout, task

from .models import SideEffect

__all__ = ["awaits_approval", "awaits_or_escalates", "cancels_another", "fans_out"]


@task(name="awaits-approval")
def awaits_approval(event, ctx):
    approval = ctx.wait_for_event(
        "approval",
        "order.approved",
        match={"order_id": event.payload["order_id"]},
        timeout=event.payload.get("timeout"),
    )
    SideEffect.objects.create(kind="approved", value=str(approval))
    return approval


@task(name="awaits-or-escalates")
def awaits_or_escalates(event, ctx):
    try:
        return ctx.wait_for_event("approval", "order.approved", timeout=3600)
    except EventTimeout as exc:
        return f"escalated: {exc}"


@task(name="fans-out")
def fans_out(event, ctx):
    calls = [("echo", n) for n in range(event.payload["n"])]
    if event.payload.get("one_fails"):
        calls.insert(1, ("non-retryable", None))
    return ctx.invoke_all("all", calls)


@task(name="cancels-another")
def cancels_another(event, ctx):
    return ctx.cancel(event.payload["id"], reason="not needed any more")
