"""``python -m tests.chaos``: start a cluster of the suite's own, migrate, invoke the
executions, run the workers under seeded random faults, let everything settle, check, print
the table, and stop and remove everything it started whatever happens."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import checks, report
from .cluster import DATABASE, Cluster
from .faults import NAMES, Injector
from .ledger import SCHEMA
from .workers import ROOT, WorkerPool

SIZE_VARIABLE = "CONDUCTOR_CHAOS_SIZE"


@dataclass(frozen=True)
class Size:
    executions: int
    workers: int
    concurrency: int
    fault_seconds: float
    #: Seconds each step takes after its side effect: paces the work to outlast the faults.
    linger: float
    interval: tuple[float, float]
    settle_seconds: float


SIZES = {
    "small": Size(300, 3, 4, 45, 0.1, (1.5, 3.5), 240),
    "full": Size(20_000, 4, 8, 600, 0.08, (3.0, 8.0), 1200),
}
STEPS = 10
LEASE, HEARTBEAT, GRACE = 3.0, 0.5, 8.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos",
        description="django_conductor's fault-injection suite (docs/reliability.md).",
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default=os.environ.get(SIZE_VARIABLE, "small"),
        help=f"small: a few hundred executions, about a minute; full: 20,000 executions, "
        f"4 workers, 10 minutes of faults (default: ${SIZE_VARIABLE}, else small)",
    )
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--executions", type=int, default=None, help="override the size's")
    parser.add_argument("--workers", type=int, default=None, help="override the size's")
    parser.add_argument("--fault-seconds", type=float, default=None, help="override the size's")
    parser.add_argument(
        "--faults",
        default=",".join(NAMES),
        help=f"the kinds to inject, comma-separated (default: all of {', '.join(NAMES)})",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the figures and violations here"
    )
    return parser.parse_args(argv)


def workload(rng: random.Random, count: int, linger: float) -> list[dict]:
    """Ten steps each; a third sleep durably once, a fifth invoke a child, one in thirty has
    a step slower than the lease (so that SIGTERM finds work in flight past the lease)."""
    payloads = []
    for n in range(count):
        payload = {"n": n, "steps": STEPS, "linger": linger, "slow": LEASE * 1.5}
        if rng.random() < 1 / 3:
            payload.update(nap_at=rng.randrange(1, STEPS), nap=round(rng.uniform(0.2, 1.0), 3))
        if rng.random() < 1 / 5:
            payload["child_at"] = rng.randrange(1, STEPS)
        if rng.random() < 1 / 30:
            payload["slow_at"] = rng.randrange(STEPS)
        payloads.append(payload)
    return payloads


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    try:
        kinds = tuple(NAMES[name.strip()] for name in options.faults.split(",") if name.strip())
    except KeyError as exc:
        print(f"unknown fault {exc}; choose from {', '.join(NAMES)}", file=sys.stderr)
        return 2
    size = SIZES[options.size]
    executions = options.executions or size.executions
    workers = options.workers or size.workers
    fault_seconds = size.fault_seconds if options.fault_seconds is None else options.fault_seconds
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1, 10**6)
    print(
        f"chaos: seed {seed}, size {options.size}: {executions} executions, {workers} workers "
        f"x {size.concurrency} threads, {fault_seconds:.0f}s of faults, lease {LEASE}s, "
        f"heartbeat {HEARTBEAT}s, grace {GRACE}s",
        flush=True,
    )
    base = Path(tempfile.mkdtemp(prefix=f"conductor_chaos_{seed}_"))
    cluster = Cluster(base / "pgdata")
    log_dir = base / "logs"
    log_dir.mkdir()
    pool: WorkerPool | None = None
    passed = False
    try:
        cluster.start()
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "CONDUCTOR_DATABASE_NAME", "PGAPPNAME")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tests.chaos.settings",
            PYTHONPATH=str(ROOT),
            CONDUCTOR_CHAOS_DB_HOST=str(cluster.host),
            CONDUCTOR_CHAOS_DB_PORT=str(cluster.port),
            CONDUCTOR_CHAOS_DB_NAME=DATABASE,
            CONDUCTOR_CHAOS_LEASE=str(LEASE),
            CONDUCTOR_CHAOS_HEARTBEAT_INTERVAL=str(HEARTBEAT),
            CONDUCTOR_CHAOS_SHUTDOWN_GRACE=str(GRACE),
        )
        os.environ.update(env)
        _prepare(cluster, workload(random.Random(seed), executions, size.linger))
        pool = WorkerPool(slots=workers, concurrency=size.concurrency, env=env, log_dir=log_dir)
        injector = Injector(
            rng=random.Random(seed + 1),
            pool=pool,
            cluster=cluster,
            lease=LEASE,
            grace=GRACE,
            interval=size.interval,
            kinds=kinds,
        )
        t0 = time.time()
        pool.start_all()
        fault_end = _fault_phase(cluster, injector, fault_seconds, t0)
        done_at = _settle(cluster, injector, size.settle_seconds, t0)
        _final_stop(pool)
        with cluster.connect() as conn:
            data = checks.load(conn)
        findings = checks.analyse(data, injected=injector.faults, pool=pool, t0=t0)
        findings.counts.update(
            seed=seed,
            size=options.size,
            workers=workers,
            concurrency=size.concurrency,
            fault_seconds=fault_end - t0,
            settled_seconds=None if done_at is None else done_at - t0,
            notes=injector.notes,
        )
        print(report.render(findings))
        if options.json:
            options.json.write_text(json.dumps(report.as_json(findings, injector), indent=2))
        passed = not findings.violations
        if not passed:
            print(f"worker logs kept in {log_dir}")
        return 0 if passed else 1
    finally:
        if pool is not None:
            pool.kill_everything()
        cluster.remove()
        shutil.rmtree(base / "pgdata", ignore_errors=True)
        if passed:
            shutil.rmtree(base, ignore_errors=True)


def _prepare(cluster: Cluster, payloads: list[dict]) -> None:
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    from .tasks import chaos_steps

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(SCHEMA)
    for start in range(0, len(payloads), 1000):
        chaos_steps.invoke_many(payloads[start : start + 1000])
    connection.close()


def _live_count(cluster: Cluster) -> tuple[int, int] | None:
    """(live, completed) executions, or None while the database is away."""
    try:
        with cluster.connect(timeout=2) as conn:
            return conn.execute(
                "SELECT count(*) FILTER (WHERE status IN "
                "('pending', 'running', 'sleeping', 'waiting')), "
                "count(*) FILTER (WHERE status = 'completed') FROM django_conductor_execution"
            ).fetchone()
    except psycopg.Error:
        return None


def _fault_phase(cluster: Cluster, injector: Injector, seconds: float, t0: float) -> float:
    """Inject faults until the time is up or nothing is left to run; returns when it ended."""
    end = time.monotonic() + seconds
    next_check = next_print = 0.0
    while time.monotonic() < end:
        injector.supervise()
        if injector.due():
            fault = injector.inject_next()
            if fault is not None:
                target = f" {fault.worker_id}" if fault.worker_id else ""
                print(f"  +{fault.at - t0:7.2f}s {fault.kind}{target}", flush=True)
        if time.monotonic() >= next_check:
            next_check = time.monotonic() + 0.5
            counts = _live_count(cluster)
            if counts is not None:
                if time.monotonic() >= next_print:
                    next_print = time.monotonic() + 10
                    print(f"  +{time.time() - t0:7.2f}s {counts[1]} completed, {counts[0]} live")
                if counts[0] == 0:
                    break
        time.sleep(0.05)
    injector.resume_all()
    return time.time()


def _settle(cluster: Cluster, injector: Injector, timeout: float, t0: float) -> float | None:
    """No more faults: wait, by condition, until no execution is live; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        injector.supervise()
        counts = _live_count(cluster)
        if counts is not None and counts[0] == 0 and injector.settled():
            return time.time()
        time.sleep(0.25)
    print(f"  +{time.time() - t0:7.2f}s executions still live after {timeout:.0f}s without faults")
    return None


def _final_stop(pool: WorkerPool) -> None:
    """SIGTERM every worker still running; each must exit 0 within the grace and 30 s."""
    for inc in pool.current.values():
        if inc.poll() is None:
            inc.fate, inc.fate_at = "final-term", time.time()
            pool.send(inc, signal.SIGTERM)
    deadline = time.monotonic() + GRACE + 30
    for inc in pool.current.values():
        while inc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if inc.poll() is None:
            inc.fate = "term-timeout"
            pool.send(inc, signal.SIGKILL)
            inc.process.wait(30)
            inc.poll()


if __name__ == "__main__":
    sys.exit(main())
