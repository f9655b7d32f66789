"""Tasks with durable steps, sleeps and children; side effects are SideEffect rows."""

from datetime import timedelta

from django_conductor import ChildExecutionFailed, task

from .models import SideEffect


def effect(kind, value=""):
    SideEffect.objects.create(kind=kind, value=str(value))
    return kind


def flag_set(name):
    return SideEffect.objects.filter(kind="flag", value=name).exists()


@task(name="order", max_attempts=3, retry_delays=[0])
def order(event, ctx):
    charge = ctx.step("charge", lambda: {"id": "ch_1", "effect": effect("charge")})
    ctx.step("email", effect, "email")

    def save():
        effect("save-try", event.attempt)
        if event.attempt == 1:
            raise RuntimeError("database hiccup while saving")
        return effect("save")

    ctx.step("save", save)
    return {"charge": charge["id"]}


@task(name="hundred-items", max_attempts=2, retry_delays=[0])
def hundred_items(event, ctx):
    def process(item):
        if item == 50 and event.attempt == 1:
            raise RuntimeError("item 50 failed")
        effect("item", item)
        return item * 2

    total = 0
    for item in range(1, 101):
        total += ctx.step(f"item-{item}", process, item)
    return total


@task(name="reminder", priority=5)
def reminder(event, ctx):
    ctx.step("welcome", effect, "welcome")
    ctx.sleep("wait-a-day", timedelta(days=1))
    ctx.step("remind", effect, "reminder")
    return "reminded"


@task(name="double")
def double(event, ctx):
    effect("double", event.payload)
    return event.payload * 2


@task(name="parent")
def parent(event, ctx):
    before = ctx.step("before", effect, "before")
    child = ctx.invoke("double-it", "double", event.payload, queue="other")
    return {"before": before, "child": child}


@task(name="grandparent")
def grandparent(event, ctx):
    return ctx.invoke("parent", parent, event.payload)


@task(name="child-fails", max_attempts=2, retry_delays=[0])
def child_fails(event, ctx):
    effect("child-attempt", event.attempt)
    raise ValueError("card declined")


@task(name="parent-of-failing-child")
def parent_of_failing_child(event, ctx):
    return ctx.invoke("pay", "child-fails", {})


@task(name="parent-compensates")
def parent_compensates(event, ctx):
    try:
        return ctx.invoke("pay", "child-fails", {})
    except ChildExecutionFailed as exc:
        ctx.step("refund", effect, "refund")
        return {"compensated": str(exc)}


@task(name="parent-with-timeout")
def parent_with_timeout(event, ctx):
    return ctx.invoke("slow-child", "double", 1, timeout=timedelta(minutes=5), queue="nowhere")


@task(name="duplicate-steps")
def duplicate_steps(event, ctx):
    ctx.step("same", effect, "first")
    ctx.step("same", effect, "second")


@task(name="non-json-step")
def non_json_step(event, ctx):
    ctx.step("makes-a-set", lambda: {1, 2, 3})


@task(name="async-everything")
async def async_everything(event, ctx):
    async def fetch():
        return {"fetched": True}

    got = await ctx.step("fetch", fetch)
    plain = await ctx.step("plain", lambda: 41 + 1)
    await ctx.sleep("nap", 0)
    child = await ctx.invoke("child", "double", 21)
    await ctx.checkpoint()
    return {"got": got, "plain": plain, "child": child, "attempt": ctx.attempt}


@task(name="steps-then-checkpoint")
def steps_then_checkpoint(event, ctx):
    ctx.step("one", effect, "one")
    ctx.checkpoint()
    return ctx.step("two", effect, "two")


@task(name="twenty-steps")
def twenty_steps(event, ctx):
    import time

    def work(number):
        effect("step", number)
        time.sleep(event.payload.get("linger", 0.1))  # a window for SIGKILL mid-step
        return number

    return sum(ctx.step(f"step-{n}", work, n) for n in range(1, 21))


@task(name="ctx-in-atomic", max_attempts=3, retry_delays=[0])
def ctx_in_atomic(event, ctx):
    """Makes one ctx call inside transaction.atomic(), after a query in the block or not."""
    from django.db import transaction
    from django.utils import timezone

    calls = {
        "step": lambda: ctx.step("inside", effect, "inside"),
        "sleep": lambda: ctx.sleep("inside", 0),
        "sleep_until": lambda: ctx.sleep_until("inside", timezone.now()),
        "invoke": lambda: ctx.invoke("inside", "record", "child"),
        "checkpoint": ctx.checkpoint,
    }
    with transaction.atomic():
        if event.payload["query_first"]:
            SideEffect.objects.exists()
        calls[event.payload["call"]]()
    effect("after-atomic")


@task(name="atomic-inside-step")
def atomic_inside_step(event, ctx):
    """The right way round: the step's function opens the atomic block."""
    from django.db import transaction

    def save():
        with transaction.atomic():
            return effect("saved")

    return ctx.step("save", save)


@task(name="raising-step", max_attempts=1)
def raising_step(event, ctx):
    def charge():
        effect("charge-try")
        if not flag_set("card-fixed"):
            raise RuntimeError("card declined")
        return "charged"

    return ctx.step("charge", charge)


@task(name="slow-steps")
def slow_steps(event, ctx):
    import time

    def work(number):
        effect("slow-step", number)
        time.sleep(0.1)
        return number

    return sum(ctx.step(f"step-{n}", work, n) for n in range(1, 31))
