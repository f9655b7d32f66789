"""The executions the fault-injection suite runs: many steps whose side effect is a row in
the ledger, a short durable sleep in some, a child execution in others."""

import os
import time
import uuid

from django.db import connection

from django_conductor import task

from .ledger import INSERT_LEDGER_ROW

#: Attempts are not what the suite measures: a run lost to a fault must never fail one for good.
MAX_ATTEMPTS = 1000


def step_value(n: int, index: int, *, child: bool = False) -> int:
    """What step ``index`` of execution ``n`` returns; the runner recomputes the sum."""
    return (n * 7 + index * 13 + (5 if child else 0)) % 101


def expected_result(payload: dict) -> dict:
    total = sum(step_value(payload["n"], i) for i in range(payload["steps"]))
    if payload.get("child_at") is not None:
        total += sum(step_value(payload["n"], i, child=True) for i in range(3))
    return {"n": payload["n"], "sum": total}


def side_effect(execution_id, step, claims, attempt, called_at, value, linger):
    """The step function: append the side effect to the ledger at once (autocommit, before
    the step's own record), then take ``linger`` seconds, the window in which a fault leaves
    the step in flight."""
    run = uuid.uuid4().hex
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_LEDGER_ROW,
            {
                "execution": execution_id,
                "step": step,
                "run": run,
                "pid": os.getpid(),
                "claims": claims,
                "attempt": attempt,
                "called_at": called_at,
                "monotonic": time.monotonic(),
            },
        )
    time.sleep(linger)
    return {"v": value, "run": run}


def _claims(ctx) -> int:
    # The claim number fences every write of this run; ctx keeps it privately. -1 makes the
    # runner report that it can no longer tell the runs of one execution apart.
    return getattr(ctx, "_claims", -1)


def run_steps(event, ctx, names, values, lingers):
    total = 0
    for name, value, linger in zip(names, values, lingers, strict=True):
        # called_at is taken before ctx.step, so before the worker decides to start the step.
        called_at = time.time()
        result = ctx.step(
            name,
            side_effect,
            event.execution_id,
            name,
            _claims(ctx),
            event.attempt,
            called_at,
            value,
            linger,
        )
        total += result["v"]
    return total


@task(name="chaos-steps", max_attempts=MAX_ATTEMPTS, retry_delays=[0.2])
def chaos_steps(event, ctx):
    payload = event.payload
    n, steps = payload["n"], payload["steps"]
    total = 0
    for index in range(steps):
        if index == payload.get("nap_at"):
            ctx.sleep("nap", payload["nap"])
        if index == payload.get("child_at"):
            child = ctx.invoke("child", "chaos-child", {"n": n, "linger": payload["linger"]})
            total += child["sum"]
        linger = payload["slow"] if index == payload.get("slow_at") else payload["linger"]
        total += run_steps(event, ctx, [f"s{index:02d}"], [step_value(n, index)], [linger])
    return {"n": n, "sum": total}


@task(name="chaos-child", max_attempts=MAX_ATTEMPTS, retry_delays=[0.2])
def chaos_child(event, ctx):
    n, linger = event.payload["n"], event.payload["linger"]
    names = [f"c{index}" for index in range(3)]
    values = [step_value(n, index, child=True) for index in range(3)]
    return {"n": n, "sum": run_steps(event, ctx, names, values, [linger] * 3)}
