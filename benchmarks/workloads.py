"""The workloads. Each one starts from empty tables, drives real ``conductor_worker``
processes at their default settings, reads its figures from the database clock and checks
at the end that every execution ran exactly once (``BenchmarkFailure`` otherwise)."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from .harness import (
    DATABASE_CPU_NOT_LOCAL,
    EXECUTION,
    STEP,
    BenchmarkFailure,
    CpuSampler,
    WorkerProcess,
    analyze,
    completed,
    conninfo,
    drain_timeout,
    execute,
    percentile,
    query,
    reset_tables,
    running,
    server_is_local,
    step_rows,
    verify,
    wait_for_exit,
    wait_until,
    window,
)

NOOP = "bench-noop"
STEPS = "bench-steps"
SLEEP_CHILD = "bench-sleep-child"
HISTORY = "bench-history"  # the finished rows of the scale workload; never run
STEPS_EACH = 10
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """How much each workload does. ``--quick`` and ``--size`` derive smaller or larger."""

    noop: int = 20_000
    steps: int = 2_000
    pickup: int = 500
    pickup_gap_ms: float = 10.0
    invoke_single: int = 2_000
    invoke_many: int = 50_000
    invoke_batch: int = 5_000
    sleep_child: int = 1_000
    scale_rows: int = 1_000_000
    scale_noop: int = 20_000
    claim_samples: int = 200
    parked_rows: int = 100_000
    cron_schedules: int = 1_000
    emits: int = 2_000
    trigger_rows: int = 10_000
    limit_noop: int = 10_000
    limit_backlog: int = 20_000
    memory_noop: int = 4_000
    memory_steps: int = 400
    prune_rows: int = 200_000
    batch_rows: int = 20_000
    telemetry_noop: int = 10_000
    scaleout_noop: int = 100_000
    scaleout_steps: int = 10_000
    pgbench_seconds: float = 5.0
    peer_noop: int = 20_000
    peer_pickup: int = 500
    peer_drain_cap_s: float = 90.0

    UNSCALED = (
        "pickup_gap_ms",
        "invoke_batch",
        "claim_samples",
        "pgbench_seconds",
        "peer_drain_cap_s",
    )

    def scaled(self, factor: float) -> Sizes:
        changes: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in self.UNSCALED:
                changes[f.name] = max(10, int(getattr(self, f.name) * factor))
        return replace(self, **changes)

    @classmethod
    def quick(cls) -> Sizes:
        return replace(
            cls().scaled(0.1),
            scale_rows=100_000,
            parked_rows=20_000,
            claim_samples=50,
            pgbench_seconds=2.0,
            peer_drain_cap_s=15.0,
        )


def _tasks() -> Any:
    from benchmarks.benchapp import tasks

    return tasks


def enqueue(task: Any, count: int, batch: int = 5_000) -> None:
    """``invoke_many`` in batches, each its own transaction."""
    for start in range(0, count, batch):
        task.invoke_many({"n": n} for n in range(start, min(count, start + batch)))


def _mb(value: int) -> float:
    return round(value / MB, 1)


# -- 1. no-op throughput ----------------------------------------------------------------


def noop_throughput(sizes: Sizes, workers: int = 1, count: int | None = None) -> dict[str, Any]:
    """Invoke ``count`` no-ops, then drain them with ``workers`` burst worker processes."""
    count = count or sizes.noop
    reset_tables()
    enqueue(_tasks().noop, count)
    analyze()
    procs = [WorkerProcess(f"noop-{workers}w-{i}", ["--burst"]) for i in range(workers)]
    wait_for_exit(procs, drain_timeout(count), lambda: completed(NOOP))
    verify(NOOP, count)
    span = window(NOOP)
    wall = max(p.wall for p in procs)
    return {
        "executions": count,
        "workers": workers,
        "rate": span.rate,
        "window_s": span.seconds,
        "wall_s": wall,
        "wall_rate": count / wall,
        "startup_and_exit_s": wall - span.seconds,
        "worker_cpu_s": sum(p.cpu_s for p in procs),
        "peak_rss_mb": max(_mb(p.peak_rss) for p in procs),
    }


# -- 2. step checkpoints ----------------------------------------------------------------


def steps(sizes: Sizes) -> dict[str, Any]:
    count = sizes.steps
    reset_tables()
    enqueue(_tasks().ten_steps, count)
    analyze()
    proc = WorkerProcess("steps", ["--burst"])
    wait_for_exit([proc], drain_timeout(count * STEPS_EACH), lambda: step_rows(STEPS))
    verify(STEPS, count, steps_each=STEPS_EACH)
    span = window(STEPS)
    return {
        "executions": count,
        "steps": count * STEPS_EACH,
        "rate": count * STEPS_EACH / span.seconds,
        "executions_rate": span.rate,
        "window_s": span.seconds,
        "wall_s": proc.wall,
        "worker_cpu_s": proc.cpu_s,
        "peak_rss_mb": _mb(proc.peak_rss),
    }


# -- 3. pickup latency ------------------------------------------------------------------


HOLD = "bench-hold"


def pickup(sizes: Sizes) -> dict[str, Any]:
    """Pickup latency with the worker idle, then with half its threads busy; beside them,
    the NOTIFY round trip on this server, the floor a pickup cannot go under."""
    result = _pickup(sizes, busy=0)
    busy = _pickup(sizes, busy=DEFAULT_CONCURRENCY // 2)
    kept = ("busy_threads", "p50_ms", "p95_ms", "p99_ms", "invoke_p50_ms")
    result["busy"] = {key: busy[key] for key in kept}
    result["notify"] = notify_round_trip(sizes.pickup)
    return result


#: The worker's default concurrency (``CONDUCTOR_CONCURRENCY``), which the benchmark keeps.
DEFAULT_CONCURRENCY = 10


def _pickup(sizes: Sizes, busy: int) -> dict[str, Any]:
    """A worker with ``busy`` threads held by long executions and the rest idle; executions
    invoked one by one; latency = started_at - created_at."""
    count, gap = sizes.pickup, sizes.pickup_gap_ms / 1000.0
    tasks = _tasks()
    noop = tasks.noop
    reset_tables()
    with running(WorkerProcess(f"pickup-busy{busy}", [])) as worker:
        warm = noop.invoke({"warm-up": True})
        wait_until(lambda: completed(NOOP) == 1, 60, "the worker to run a first execution")
        hold_s = count * gap + 3.0
        for _ in range(busy):
            tasks.hold.invoke({"seconds": hold_s})
        wait_until(lambda: _started(HOLD) == busy, 60, f"{busy} long executions to start")
        time.sleep(0.5)  # let it settle into waiting for work
        start = time.perf_counter()
        #: How long each invoke() call took, by execution id: its own statement and commit.
        invoking: dict[int, float] = {}
        for n in range(count):
            called = time.perf_counter()
            handle = noop.invoke({"n": n})
            invoking[handle.id] = (time.perf_counter() - called) * 1000
            worker.sample()
            pause = start + (n + 1) * gap - time.perf_counter()
            if pause > 0:
                time.sleep(pause)

        def done() -> bool:
            worker.sample()
            return completed(NOOP) == count + 1 and completed(HOLD) == busy

        wait_until(done, drain_timeout(count) + hold_s, f"{count} executions to complete")
    verify(NOOP, count + 1)
    if busy:
        verify(HOLD, busy)
    picked_up = query(
        f"SELECT id, extract(epoch FROM started_at - created_at)::float * 1000 "
        f"FROM {EXECUTION} WHERE task_name = %s AND id > %s",
        [NOOP, warm.id],
    )
    latencies = [float(row[1]) for row in picked_up]
    return {
        "executions": count,
        "gap_ms": sizes.pickup_gap_ms,
        "busy_threads": busy,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        # A pickup holds the invoke's own statement and commit: beside it, that call.
        "invoke_p50_ms": percentile(list(invoking.values()), 0.50),
        "peak_rss_mb": _mb(worker.peak_rss),
    }


def _started(task_name: str) -> int:
    (row,) = query(
        f"SELECT count(*) FROM {EXECUTION} WHERE task_name = %s AND status = 'running'",
        [task_name],
    )
    return int(row[0])


def notify_round_trip(samples: int) -> dict[str, Any]:
    """From sending ``NOTIFY`` on one connection (autocommit) to a thread listening on
    another having it: what a pickup costs at least, before any claim."""
    import threading

    import psycopg

    heard: list[float] = []
    ready, got = threading.Event(), threading.Semaphore(0)
    channel = "bench_round_trip"

    def listen() -> None:
        with psycopg.connect(conninfo(), autocommit=True) as conn:
            conn.execute(f"LISTEN {channel}")
            ready.set()
            for note in conn.notifies():
                heard.append(time.perf_counter())
                got.release()
                if note.payload == "last":
                    break

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    ready.wait(30)
    sent: list[float] = []
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        for n in range(samples):
            sent.append(time.perf_counter())
            conn.execute("SELECT pg_notify(%s, %s)", [channel, "last" if n == samples - 1 else ""])
            if not got.acquire(timeout=10):
                raise BenchmarkFailure("a NOTIFY was not heard within 10 s")
            time.sleep(0.002)
    listener.join(10)
    trips = [(h - s) * 1000 for s, h in zip(sent, heard, strict=True)]
    return {
        "samples": samples,
        "p50_ms": percentile(trips, 0.50),
        "p99_ms": percentile(trips, 0.99),
    }


# -- 4. invoke rate ---------------------------------------------------------------------


def invoke_rate(sizes: Sizes) -> dict[str, Any]:
    """``invoke()`` one at a time in autocommit from one thread; ``invoke()`` inside an open
    transaction against a bare psycopg INSERT of the same row and the same INSERT through
    Django's cursor; ``invoke_many`` batches."""
    noop = _tasks().noop
    reset_tables()
    autocommit = _autocommit(sizes.invoke_single)
    in_transaction = _in_transaction(sizes.invoke_single)
    ((before,),) = query(f"SELECT coalesce(max(id), 0) FROM {EXECUTION}")
    started = time.perf_counter()
    enqueue(noop, sizes.invoke_many, sizes.invoke_batch)
    many_s = time.perf_counter() - started
    # Each call of either kind stores a row: invoke()'s, the bare INSERTs', Django's.
    expected = 2 * autocommit["single_calls"] + 3 * in_transaction["in_transaction_calls"]
    expected += sizes.invoke_many
    (row,) = query(
        f"SELECT count(*), count(DISTINCT payload) FILTER (WHERE id > %s) FROM {EXECUTION} "
        f"WHERE task_name = %s AND status = 'pending'",
        [before, NOOP],
    )
    if row[0] != expected or row[1] != sizes.invoke_many:
        raise BenchmarkFailure(
            f"invoke: expected {expected} pending executions ({sizes.invoke_many} distinct "
            f"from invoke_many), found {row[0]} ({row[1]})"
        )
    return {
        **autocommit,
        **in_transaction,
        "many_rows": sizes.invoke_many,
        "many_batch": sizes.invoke_batch,
        "many_rate": sizes.invoke_many / many_s,
    }


#: The row ``invoke()`` stores for a no-op, as a bare INSERT (no notification).
BARE_INSERT = (
    f"INSERT INTO {EXECUTION} (task_name, queue, payload, priority, run_at, max_attempts) "
    "VALUES (%s, %s, %s::jsonb, %s, now(), %s) RETURNING id"
)
#: Turns of each, alternated, so that a drift in the machine's load hits both alike.
ALTERNATED_TURNS = 4


def _autocommit(calls: int) -> dict[str, Any]:
    """Calls a second of ``invoke()`` in autocommit, each its own transaction, against a bare
    psycopg INSERT of the same row committed the same way (prepared after five uses): what
    a Python client gets from this server for this row, beside pgbench's C client writing a
    narrower one. Turns alternate; the rates count every turn."""
    import json

    import psycopg

    noop = _tasks().noop
    per_turn = max(1, calls // ALTERNATED_TURNS)
    invoke_s = bare_s = 0.0
    with psycopg.connect(conninfo(), autocommit=True) as conn, conn.cursor() as cursor:
        for _ in range(ALTERNATED_TURNS):
            started = time.perf_counter()
            for n in range(per_turn):
                noop.invoke({"n": n})
            invoke_s += time.perf_counter() - started
            started = time.perf_counter()
            for n in range(per_turn):
                cursor.execute(BARE_INSERT, [NOOP, "default", json.dumps({"n": n}), 0, 3])
                cursor.fetchone()
            bare_s += time.perf_counter() - started
    done = per_turn * ALTERNATED_TURNS
    return {
        "single_calls": done,
        "single_rate": done / invoke_s,
        "bare_autocommit_rate": done / bare_s,
    }


def _in_transaction(calls: int) -> dict[str, Any]:
    """Per-call ms of ``invoke()`` inside one open transaction (the view case), against a
    bare psycopg INSERT of the same row on a connection of its own (psycopg's defaults:
    server-side binding, prepared after five uses), and against the same INSERT through
    Django's own cursor in the same transaction (what a view's raw SQL pays at the project's
    settings); the best turn of each counts."""
    import json

    import psycopg
    from django.db import connection, transaction

    noop = _tasks().noop
    per_turn = max(1, calls // ALTERNATED_TURNS)
    invoke_ms: list[float] = []
    bare_ms: list[float] = []
    django_ms: list[float] = []

    def turn(run: Callable[[int], Any], into: list[float]) -> None:
        started = time.perf_counter()
        for n in range(per_turn):
            run(n)
        into.append((time.perf_counter() - started) * 1000 / per_turn)

    def row(n: int) -> list[Any]:
        return [NOOP, "default", json.dumps({"n": n}), 0, 3]

    def through_django(n: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute(BARE_INSERT, row(n))
            cursor.fetchone()

    with psycopg.connect(conninfo()) as conn:
        for _ in range(ALTERNATED_TURNS):
            with transaction.atomic():
                turn(lambda n: noop.invoke({"n": n}), invoke_ms)
            with conn.transaction(), conn.cursor() as cursor:
                turn(lambda n: cursor.execute(BARE_INSERT, row(n)).fetchone(), bare_ms)
            with transaction.atomic():
                turn(through_django, django_ms)
    best_invoke, best_bare = min(invoke_ms), min(bare_ms)
    return {
        "in_transaction_calls": per_turn * ALTERNATED_TURNS,
        "in_transaction_ms": best_invoke,
        "bare_insert_ms": best_bare,
        "in_transaction_ratio": best_invoke / best_bare,
        "django_insert_ms": min(django_ms),
    }


# -- 5. sleep + child round trip --------------------------------------------------------


def sleep_child(sizes: Sizes) -> dict[str, Any]:
    """Each parent sleeps zero seconds and waits for a no-op child."""
    count = sizes.sleep_child
    reset_tables()
    enqueue(_tasks().sleep_and_child, count)
    analyze()
    proc = WorkerProcess("sleep-child", ["--burst"])
    wait_for_exit([proc], drain_timeout(count * 3), lambda: completed(NOOP, SLEEP_CHILD))
    # A parent is claimed again once its child has finished: twice, never more.
    verify(SLEEP_CHILD, count, claims=None, max_claims=2, steps_each=2)
    verify(NOOP, count)
    (row,) = query(
        f"SELECT count(DISTINCT parent_id), count(*) FILTER (WHERE parent_id IS NULL) "
        f"FROM {EXECUTION} WHERE task_name = %s",
        [NOOP],
    )
    if row != (count, 0):
        raise BenchmarkFailure(f"sleep-child: expected one child per parent, found {row}")
    span = window(SLEEP_CHILD)
    (claims,) = query(f"SELECT sum(claims) FROM {EXECUTION}")
    return {
        "executions": count,
        "rate": span.rate,
        "window_s": span.seconds,
        "claims": int(claims[0]),
        "wall_s": proc.wall,
        "peak_rss_mb": _mb(proc.peak_rss),
    }


# -- 6. scale ---------------------------------------------------------------------------


def _finished_rows(age: str) -> str:
    """An INSERT of ``%s`` completed no-op rows, one a second, the newest ``age`` old."""
    return f"""
INSERT INTO {EXECUTION} (task_name, queue, event_name, payload, status, priority, run_at,
    attempts, max_attempts, claims, superseded, wake_pending, result, error, created_at,
    started_at, finished_at)
SELECT '{HISTORY}', 'default', 'conductor.invoke', jsonb_build_object('n', g), 'completed', 0,
    t, 1, 3, 1, false, false, 'null'::jsonb, '', t, t, t + interval '5 milliseconds'
FROM generate_series(1, %s) AS g,
    LATERAL (SELECT now() - interval '{age}' - make_interval(secs => %s - g) AS t) AS at
"""


_HISTORY = _finished_rows("0 days")


def claim_latency(samples: int) -> dict[str, Any]:
    """Time the worker's claim (10 places, 10 idle threads) on ready rows, rolled back each
    time."""
    from django.db import connection

    from django_conductor.registry import registry
    from django_conductor.store import claims

    tasks = sorted(task.name for task in registry)
    common = {"worker": "bench-claim", "lease": 30.0, "tasks": tasks}
    if hasattr(claims, "CLAIM"):  # the claim function
        statement = claims.CLAIM
        params = {**common, "places": 10, "idle": 10, "queues": None}
    elif hasattr(claims, "CLAIM_ANY_QUEUE"):  # the statement before it, for comparisons
        statement = claims.CLAIM_ANY_QUEUE
        params = {**common, "limit": 10, "start": 10, "queues": []}
    else:
        return {"error": "django_conductor.store.claims has no claim statement"}
    connection.ensure_connection()
    conn = connection.connection
    timings = []
    try:
        for n in range(samples + 5):
            with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                started = time.perf_counter()
                cursor.execute(statement, params, prepare=True)
                claimed = cursor.fetchall()
                elapsed = (time.perf_counter() - started) * 1000
            if len(claimed) != 10:
                return {"error": f"the claim returned {len(claimed)} rows, not 10"}
            if n >= 5:  # the first few prepare the statement and warm the cache
                timings.append(elapsed)
        with conn.transaction(force_rollback=True), conn.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", params)
            plan = [row[0] for row in cursor.fetchall()]
    except Exception as exc:  # the statement changed shape: report, do not fail the run
        return {"error": f"{type(exc).__name__}: {exc}"}
    server_ms = next(
        (float(line.split(":")[1].split()[0]) for line in plan if "Execution Time" in line),
        None,
    )
    return {
        "p50_ms": percentile(timings, 0.5),
        "p95_ms": percentile(timings, 0.95),
        "explain_ms": server_ms,
        "plan": plan,
    }


def scale(sizes: Sizes) -> dict[str, Any]:
    """The no-op drain and the claim statement on an empty table and with ``scale_rows``
    finished executions already in it; twice each, in the order empty, loaded, loaded,
    empty, so that drift in the machine's load cancels out; the best of each pair counts."""
    noop = _tasks().noop

    def drain(label: str, history: int) -> dict[str, Any]:
        enqueue(noop, sizes.scale_noop)
        analyze()
        claim = claim_latency(sizes.claim_samples)
        proc = WorkerProcess(f"scale-{label}-{len(runs) + 1}", ["--burst"])
        wait_for_exit([proc], drain_timeout(sizes.scale_noop), lambda: completed(NOOP))
        verify(NOOP, sizes.scale_noop)
        (row,) = query(f"SELECT count(*) FROM {EXECUTION} WHERE task_name = %s", [HISTORY])
        if row[0] != history:
            raise BenchmarkFailure(f"scale: {row[0]} history rows, expected {history}")
        span = window(NOOP)
        execute(f"DELETE FROM {EXECUTION} WHERE task_name = %s", [NOOP])
        execute(f"VACUUM ANALYZE {EXECUTION}")
        return {"table": label, "rate": span.rate, "window_s": span.seconds, "claim": claim}

    result: dict[str, Any] = {"rows": sizes.scale_rows, "executions": sizes.scale_noop}
    reset_tables()
    runs: list[dict[str, Any]] = []
    runs.append(drain("empty", 0))
    started = time.perf_counter()
    execute(_HISTORY, [sizes.scale_rows, sizes.scale_rows])
    execute(f"VACUUM ANALYZE {EXECUTION}")
    result["insert_s"] = time.perf_counter() - started
    runs += [drain("loaded", sizes.scale_rows), drain("loaded", sizes.scale_rows)]
    reset_tables()
    runs.append(drain("empty", 0))
    for label in ("empty", "loaded"):
        mine = [run for run in runs if run["table"] == label]
        claims = [run["claim"] for run in mine if "p50_ms" in run["claim"]]
        result[label] = {
            "rate": max(run["rate"] for run in mine),
            "rates": [run["rate"] for run in mine],
            "claim": min(claims, key=lambda c: c["p50_ms"]) if claims else mine[0]["claim"],
        }
    result["ratio"] = result["loaded"]["rate"] / result["empty"]["rate"]
    reset_tables()
    return result


#: Parked executions ahead of and behind the ready ones: sleeping, waiting on a child (with
#: no deadline), delayed, and backing off, half of them at a higher priority.
_PARKED = f"""
INSERT INTO {EXECUTION} (task_name, status, run_at, priority)
SELECT %s, (ARRAY['sleeping', 'waiting', 'pending', 'pending'])[g %% 4 + 1],
    CASE WHEN g %% 4 = 1 THEN NULL ELSE now() + make_interval(mins => 1 + g %% 600) END,
    CASE WHEN g %% 2 = 0 THEN 10 ELSE 0 END
FROM generate_series(1, %s) AS g
"""


def parked(sizes: Sizes) -> dict[str, Any]:
    """The claim of ten ready executions on a table with nothing else in it, and with
    ``parked_rows`` parked executions around them: its cost must not grow with parked work."""
    noop = _tasks().noop
    reset_tables()
    enqueue(noop, 10)
    analyze()
    empty = claim_latency(sizes.claim_samples)
    execute(_PARKED, [noop.name, sizes.parked_rows])
    execute(f"VACUUM ANALYZE {EXECUTION}")
    loaded = claim_latency(sizes.claim_samples)
    reset_tables()
    result: dict[str, Any] = {"rows": sizes.parked_rows, "empty": empty, "parked": loaded}
    if "p50_ms" in empty and "p50_ms" in loaded:
        result["ratio"] = loaded["p50_ms"] / empty["p50_ms"]
    return result


# -- 10. cron -------------------------------------------------------------------------


def cron(sizes: Sizes) -> dict[str, Any]:
    """What ``cron_schedules`` schedules cost: making them with ``schedule()`` (one
    transaction each), the heartbeat's look for due ones when none is due, and advancing
    them all at once, as after an outage."""
    from django.db import connection, transaction

    from django_conductor import schedule
    from django_conductor.triggers.schedules import advance_due

    noop = _tasks().noop
    reset_tables()
    count = sizes.cron_schedules
    began = time.perf_counter()
    for n in range(count):
        schedule(noop, f"new-year-{n}", "0 0 1 1 *", payload={"n": n})
    made = time.perf_counter() - began
    analyze()
    execute("ANALYZE django_conductor_schedule")

    def duty() -> tuple[int, float]:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            advanced = advance_due(cursor, [noop.name])
        return advanced, (time.perf_counter() - started) * 1000

    idle = [duty() for _ in range(sizes.claim_samples)]
    if any(advanced for advanced, _ in idle):
        raise BenchmarkFailure("a schedule was due before its tick")
    # As if no worker had run for a year: every next tick, and its execution, passed.
    execute("UPDATE django_conductor_schedule SET next_run_at = next_run_at - interval '1 year'")
    execute(
        f"UPDATE {EXECUTION} SET run_at = run_at - interval '1 year', "
        "scheduled_at = scheduled_at - interval '1 year'"
    )
    began = time.perf_counter()
    advanced = 0
    while True:
        n, _ms = duty()
        if not n:
            break
        advanced += n
    catch_up = time.perf_counter() - began
    ticks = query(f"SELECT count(*) FROM {EXECUTION}")[0][0]
    reset_tables()
    if advanced != count or ticks != 2 * count:
        raise BenchmarkFailure(f"advanced {advanced} of {count} schedules; {ticks} ticks")
    return {
        "schedules": count,
        "schedule_rate": count / made,
        "idle_p50_ms": percentile([ms for _, ms in idle], 0.5),
        "catch_up_ms": catch_up * 1000,
        "catch_up_per_schedule_ms": catch_up * 1000 / count,
    }


# -- 11. emit -------------------------------------------------------------------------


def emit_rate(sizes: Sizes) -> dict[str, Any]:
    """``emit()`` from one thread in autocommit, each call its own transaction, to an event
    one task listens to and to one ten tasks listen to."""
    from django_conductor import emit

    result: dict[str, Any] = {"emits": sizes.emits}
    for event, listeners in (("bench.one", 1), ("bench.ten", 10)):
        reset_tables()
        began = time.perf_counter()
        for n in range(sizes.emits):
            emit(event, {"n": n})
        elapsed = time.perf_counter() - began
        stored = query(f"SELECT count(*) FROM {EXECUTION}")[0][0]
        if stored != sizes.emits * listeners:
            raise BenchmarkFailure(f"{event}: {stored} executions, not {sizes.emits * listeners}")
        result[f"to_{listeners}"] = {
            "events_per_s": sizes.emits / elapsed,
            "executions_per_s": stored / elapsed,
        }
    reset_tables()
    return result


# -- 12. row triggers -------------------------------------------------------------------


def row_trigger(sizes: Sizes) -> dict[str, Any]:
    """``bulk_create`` of ``trigger_rows`` rows in one transaction into a table a task
    subscribes to (``on_model(..., "insert")``: one execution per row), against the same
    into a table of the same shape that no task subscribes to; three of each, alternated,
    the best of each counts."""
    from django.db import transaction

    from benchmarks.benchapp.models import PlainRow, TriggeredRow

    def insert(model: Any) -> float:
        rows = [model(n=n, label=f"row {n}") for n in range(sizes.trigger_rows)]
        began = time.perf_counter()
        with transaction.atomic():
            model.objects.bulk_create(rows, batch_size=2_000)
        return time.perf_counter() - began

    reset_tables()
    plain, triggered = [], []
    for _ in range(3):
        execute("TRUNCATE benchapp_plainrow, benchapp_triggeredrow")
        plain.append(insert(PlainRow))
        triggered.append(insert(TriggeredRow))
    executions = query(f"SELECT count(*) FROM {EXECUTION}")[0][0]
    reset_tables()
    execute("TRUNCATE benchapp_plainrow, benchapp_triggeredrow")
    if executions != 3 * sizes.trigger_rows:
        raise BenchmarkFailure(f"{executions} executions for {3 * sizes.trigger_rows} rows")
    return {
        "rows": sizes.trigger_rows,
        "plain_ms": min(plain) * 1000,
        "triggered_ms": min(triggered) * 1000,
        "ratio": min(triggered) / min(plain),
    }


# -- 13. concurrency limits -----------------------------------------------------------

LIMITED = "bench-limited-5"


def limits(sizes: Sizes) -> dict[str, Any]:
    """No-ops of a task with ``concurrency=5`` drained by one worker, beside the same
    no-ops unlimited; then unlimited no-ops drained while a backlog of the limited task,
    invoked before them, waits in the same queue (its rows older, so first in claim order)."""
    count = sizes.limit_noop

    def drain(task_name: str, label: str) -> float:
        procs = [WorkerProcess(label, ["--burst"])]
        wait_for_exit(procs, drain_timeout(count), lambda: completed(task_name))
        return window(task_name).rate

    reset_tables()
    enqueue(_tasks().noop, count)
    analyze()
    unlimited = drain(NOOP, "limits-unlimited")
    verify(NOOP, count)

    reset_tables()
    enqueue(_tasks().limited_five, count)
    analyze()
    limited = drain(LIMITED, "limits-limited")
    verify(LIMITED, count)

    reset_tables()
    enqueue(_tasks().limited_five, sizes.limit_backlog)
    enqueue(_tasks().noop, count)
    analyze()
    procs = [WorkerProcess("limits-mixed", [])]
    wait_for_exit_or_done(procs, drain_timeout(count), lambda: completed(NOOP), count)
    mixed = window(NOOP).rate
    return {
        "executions": count,
        "backlog": sizes.limit_backlog,
        "unlimited_rate": unlimited,
        "limited_rate": limited,
        "mixed_rate": mixed,
        "mixed_loss": 1 - mixed / unlimited,
    }


def wait_for_exit_or_done(
    workers: list[WorkerProcess], timeout: float, progress: Any, count: int
) -> None:
    """Wait until ``progress()`` reaches ``count``, then stop the (non-burst) workers."""
    deadline = time.perf_counter() + timeout
    while progress() < count:
        if time.perf_counter() > deadline:
            raise BenchmarkFailure(f"only {progress()} of {count} completed in {timeout:.0f}s")
        time.sleep(0.2)
    for worker in workers:
        worker.terminate()


# -- 7. memory --------------------------------------------------------------------------


def memory(sizes: Sizes) -> dict[str, Any]:
    """Peak resident memory of one worker draining no-ops and ten-step executions."""
    tasks = _tasks()
    result: dict[str, Any] = {"noop": sizes.memory_noop, "steps": sizes.memory_steps}
    for concurrency in (1, 20):
        reset_tables()
        enqueue(tasks.noop, sizes.memory_noop)
        enqueue(tasks.ten_steps, sizes.memory_steps)
        analyze()
        proc = WorkerProcess(f"memory-c{concurrency}", ["--burst", "-c", str(concurrency)])
        wait_for_exit(
            [proc],
            drain_timeout(sizes.memory_noop + sizes.memory_steps * 10),
            lambda: completed(NOOP, STEPS) + step_rows(STEPS),
        )
        verify(NOOP, sizes.memory_noop)
        verify(STEPS, sizes.memory_steps, steps_each=STEPS_EACH)
        result[f"c{concurrency}"] = {"peak_rss_mb": _mb(proc.peak_rss), "wall_s": proc.wall}
    return result


# -- 15. batch handlers -----------------------------------------------------------------

INSERT_ONE = "bench-insert-one"
INSERT_BATCH = "bench-insert-batch"


def batch(sizes: Sizes) -> dict[str, Any]:
    """Rows inserted per second by one worker: a task that inserts its event's row, one
    execution at a time, against a batch task (``batch=100``) that inserts its events' rows
    with one ``bulk_create``. One row per execution, so executions/s is rows/s."""
    count = sizes.batch_rows
    rates: dict[str, float] = {}
    for task_name, task in (
        (INSERT_ONE, _tasks().insert_one),
        (INSERT_BATCH, _tasks().insert_batch),
    ):
        reset_tables()
        execute("TRUNCATE benchapp_plainrow")
        enqueue(task, count)
        analyze()
        procs = [WorkerProcess(f"batch-{task_name}", ["--burst"])]
        wait_for_exit(procs, drain_timeout(count), lambda name=task_name: completed(name))
        verify(task_name, count)
        (rows,) = query("SELECT count(*) FROM benchapp_plainrow")
        if rows[0] != count:
            raise BenchmarkFailure(f"{task_name}: {rows[0]} rows inserted, not {count}")
        rates[task_name] = window(task_name).rate
    return {
        "rows": count,
        "one_rate": rates[INSERT_ONE],
        "batch_rate": rates[INSERT_BATCH],
        "speedup": rates[INSERT_BATCH] / rates[INSERT_ONE],
    }


# -- 14. pruning ------------------------------------------------------------------------

#: Finished roots past the default retention (completed, 7 days), oldest first.
_PRUNABLE = _finished_rows("8 days")


def _feed_noops(until: Any, backlog: int = 10_000, batch: int = 2_000) -> None:
    """Keep ready no-ops in the queue until ``until()`` says stop."""
    noop = _tasks().noop
    while not until():
        (row,) = query(
            f"SELECT count(*) FROM {EXECUTION} WHERE task_name = %s AND status = 'pending'",
            [NOOP],
        )
        if row[0] < backlog:
            enqueue(noop, batch, batch)
        else:
            time.sleep(0.05)


def _noop_rate(since: Any, until: Any) -> float:
    (row,) = query(
        f"SELECT count(*), extract(epoch FROM %s::timestamptz - %s::timestamptz)::float "
        f"FROM {EXECUTION} WHERE task_name = %s AND status = 'completed' "
        "AND finished_at >= %s AND finished_at < %s",
        [until, since, NOOP, since, until],
    )
    return row[0] / row[1]


def _database_now() -> Any:
    return query("SELECT clock_timestamp()")[0][0]


#: How long the no-op rate is measured without pruning, before the prune starts.
QUIET_S = 20.0
#: How often the stand-in for autovacuum vacuums the tables the workload churns (seconds).
VACUUM_EVERY_S = 10.0


@contextlib.contextmanager
def _vacuum_stand_in() -> Iterator[bool]:
    """On a server with autovacuum off, VACUUM the executions and steps every few seconds,
    as autovacuum would: without it, every no-op's dead row versions pile up and the no-op
    rate falls the longer a phase lasts, so a long phase compares badly with a short one
    whatever runs beside it. Yields whether it stands in."""
    import psycopg
    from django.db import connection

    (row,) = query("SHOW autovacuum")
    if row[0] == "on":
        yield False
        return
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    stop = threading.Event()

    def vacuum() -> None:
        with psycopg.connect(**params, autocommit=True) as conn:
            while not stop.wait(VACUUM_EVERY_S):
                conn.execute(f"VACUUM {EXECUTION}, {STEP}")

    thread = threading.Thread(target=vacuum, name="bench-vacuum", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join(timeout=120)


def prune(sizes: Sizes) -> dict[str, Any]:
    """``prune_rows`` finished executions past their retention, removed by
    ``manage.py conductor_prune`` (the pass the workers' duty runs) while a worker runs
    no-ops fed to it without pause; the no-op rate while it prunes against the rate just
    before, with the same rows in the table."""
    import subprocess
    import sys

    from .harness import ROOT, child_env

    reset_tables()
    execute(_PRUNABLE, [sizes.prune_rows, sizes.prune_rows])
    execute(f"VACUUM ANALYZE {EXECUTION}")
    proc = WorkerProcess("prune-noop")
    with contextlib.ExitStack() as stack:
        stack.callback(proc.terminate)
        vacuumed = stack.enter_context(_vacuum_stand_in())
        enqueue(_tasks().noop, 10_000)
        wait_until(lambda: completed(NOOP) > 0, 60, "the worker's first no-op")
        # First without pruning, the due rows in the table, for a fixed time.
        quiet_since = _database_now()
        began = time.perf_counter()
        _feed_noops(lambda: time.perf_counter() - began > QUIET_S)
        without = _noop_rate(quiet_since, _database_now())
        command = [sys.executable, "-m", "django", "conductor_prune"]
        started = time.perf_counter()
        since = _database_now()
        pruner = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE)
        _feed_noops(lambda: pruner.poll() is not None)
        pruning_s = time.perf_counter() - started
        during = _noop_rate(since, _database_now())
        output = pruner.stdout.read().decode() if pruner.stdout else ""
        if pruner.returncode != 0:
            raise BenchmarkFailure(f"conductor_prune exited {pruner.returncode}: {output}")
    (left,) = query(f"SELECT count(*) FROM {EXECUTION} WHERE task_name = %s", [HISTORY])
    if left[0] != 0:
        raise BenchmarkFailure(f"prune: {left[0]} of {sizes.prune_rows} due rows left")
    reset_tables()
    return {
        "rows": sizes.prune_rows,
        "prune_s": pruning_s,
        "rows_per_s": sizes.prune_rows / pruning_s,
        "noop_during": during,
        "noop_without": without,
        "ratio": during / without,
        "vacuum_stand_in": vacuumed,
        "output": output.strip().splitlines()[-1:],
    }


# -- 16. telemetry ----------------------------------------------------------------------

#: The telemetry workload's modes, in the order each round runs them.
TELEMETRY_MODES = ("off", "signals", "otel")
TELEMETRY_ROUNDS = 2


def telemetry(sizes: Sizes) -> dict[str, Any]:
    """No-op throughput of one worker with telemetry off, with a receiver on each signal,
    and with the OpenTelemetry SDK exporting to exporters that discard (``instrumented``);
    for ``otel`` the no-ops are invoked traced, so each attempt's span links to its invoke.
    The modes take turns, ``TELEMETRY_ROUNDS`` times, on a machine that may be busy: each
    mode's figure is its best round."""
    from opentelemetry.sdk.trace import TracerProvider

    from benchmarks.instrumented import MODE_VARIABLE, SENT
    from django_conductor import telemetry as conductor_telemetry

    count = sizes.telemetry_noop
    rates: dict[str, list[float]] = {mode: [] for mode in TELEMETRY_MODES}
    sent: dict[str, str] = {}
    for round_ in range(TELEMETRY_ROUNDS):
        for mode in TELEMETRY_MODES:
            reset_tables()
            traced = TracerProvider() if mode == "otel" else None
            conductor_telemetry.configure(tracer_provider=traced)
            try:
                enqueue(_tasks().noop, count)
            finally:
                conductor_telemetry.configure()
            if mode == "otel":
                (row,) = query(f"SELECT count(trace_context) FROM {EXECUTION}")
                if row[0] != count:
                    raise BenchmarkFailure(f"{row[0]} of {count} no-ops stored a trace context")
            analyze()
            env = {} if mode == "off" else {MODE_VARIABLE: mode}
            procs = [WorkerProcess(f"telemetry-{mode}-{round_}", ["--burst"], env=env)]
            wait_for_exit(procs, drain_timeout(count), lambda: completed(NOOP))
            verify(NOOP, count)
            rates[mode].append(window(NOOP).rate)
            if mode != "off":
                told = [line for line in procs[0].tail(40).splitlines() if SENT in line]
                if not told:
                    raise BenchmarkFailure(f"the {mode} worker did not say what it sent")
                sent[mode] = told[-1].split(SENT, 1)[1].strip()
    best = {mode: max(values) for mode, values in rates.items()}
    return {
        "executions": count,
        "rounds": TELEMETRY_ROUNDS,
        "rates": rates,
        "off_rate": best["off"],
        "signals_rate": best["signals"],
        "otel_rate": best["otel"],
        "signals_ratio": best["signals"] / best["off"],
        "otel_ratio": best["otel"] / best["off"],
        "sent": sent,
    }


# -- 17. scale-out ----------------------------------------------------------------------

#: The numbers of worker processes each scale-out backlog is drained by, in turn.
SCALEOUT_WORKERS = (1, 2, 4)


def scaleout(sizes: Sizes) -> dict[str, Any]:
    """A backlog of no-ops, then one of ten-step executions, each drained by 1, 2 and 4
    burst worker processes in turn; beside each drain's rate, the CPU that PostgreSQL, the
    workers and the whole machine spent over its window, to show which one runs out first
    and what one execution costs each side."""
    tasks = _tasks()
    local = server_is_local()
    result: dict[str, Any] = {"database_cpu": None if local else DATABASE_CPU_NOT_LOCAL}
    for key, task, task_name, count, steps_each in (
        ("noop", tasks.noop, NOOP, sizes.scaleout_noop, None),
        ("steps", tasks.ten_steps, STEPS, sizes.scaleout_steps, STEPS_EACH),
    ):
        drains = {
            str(workers): _scaleout_drain(task, task_name, count, workers, steps_each, local)
            for workers in SCALEOUT_WORKERS
        }
        result[key] = {"executions": count, "steps_each": steps_each, "drains": drains}
    return result


def _scaleout_drain(
    task: Any, task_name: str, count: int, workers: int, steps_each: int | None, local: bool
) -> dict[str, Any]:
    """Enqueue ``count`` executions, drain them with ``workers`` burst worker processes
    while /proc is sampled, and check that each ran once."""
    reset_tables()
    enqueue(task, count)
    analyze()
    procs = [
        WorkerProcess(f"scaleout-{task_name}-{workers}w-{i}", ["--burst"]) for i in range(workers)
    ]
    progress = (lambda: step_rows(task_name)) if steps_each else (lambda: completed(task_name))
    with CpuSampler([p.process.pid for p in procs], database=local) as cpu:
        wait_for_exit(procs, drain_timeout(count * (steps_each or 1)), progress)
    verify(task_name, count, steps_each=steps_each)
    span = window(task_name)
    drain: dict[str, Any] = {
        "workers": workers,
        "rate": span.rate,
        "window_s": span.seconds,
        "wall_s": max(p.wall for p in procs),
    }
    if steps_each:
        drain["steps_rate"] = count * steps_each / span.seconds
    # The window's ends are on the server's clock, which is this machine's only if the server
    # runs here; elsewhere the CPU is counted over the whole drain, the workers' start-up too.
    began, ended = (span.began, span.ended) if local else (0.0, math.inf)
    drain["cpu"] = cpu.usage(began, ended).figures(count)
    return drain
