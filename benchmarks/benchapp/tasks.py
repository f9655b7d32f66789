"""Benchmark tasks: they do no work of their own, so what is measured is the engine."""

from django_conductor import task

STEPS = 10


def nothing() -> None:
    return None


@task(name="bench-noop")
def noop(event, ctx):
    return None


@task(name="bench-steps")
def ten_steps(event, ctx):
    for n in range(STEPS):
        ctx.step(f"step-{n}", nothing)
    return None


@task(name="bench-sleep-child")
def sleep_and_child(event, ctx):
    ctx.sleep("nap", 0)
    return ctx.invoke("child", "bench-noop")
