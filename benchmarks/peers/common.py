"""Shared by the peer drivers, which run inside the peers' own virtualenvs (not in the
project's): arguments, worker processes, timing and the one JSON line a driver prints."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent


class DriverFailure(Exception):
    """A job was lost or run twice, or the peer did not finish: reported, run goes on."""


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["setup", "noop", "pickup"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--cap", type=float, default=60.0, help="seconds of draining at most")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the peer's")
    parser.add_argument("--logs", type=Path, default=HERE)
    return parser.parse_args()


def emit(result: dict[str, Any]) -> None:
    """The driver's answer: one JSON line, the last on stdout."""
    print(json.dumps(result), flush=True)


def main(workloads: dict[str, Callable[[argparse.Namespace], dict[str, Any]]]) -> None:
    args = arguments()
    try:
        emit(workloads[args.workload](args))
    except DriverFailure as exc:
        emit({"error": str(exc)})
        sys.exit(1)


def spawn(command: Sequence[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PYTHONPATH")
    environment = {
        **os.environ,
        "PYTHONPATH": f"{HERE}{os.pathsep}{path}" if path else str(HERE),
        **env,
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            list(command), cwd=HERE, env=environment, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def drain_backlog(
    command: Sequence[str], log: Path, done: Callable[[], int], count: int, cap: float
) -> tuple[int, bool, float]:
    """Start the worker ``command`` on a backlog of ``count`` jobs and stop it once they are
    done or ``cap`` seconds have passed: how many were done, whether capped, and the wall
    seconds it took."""
    began = time.perf_counter()
    process = spawn(command, log)
    deadline = time.monotonic() + cap
    capped = False
    while done() < count:
        if time.monotonic() > deadline:
            capped = True
            break
        if process.poll() is not None and done() < count:
            raise DriverFailure(
                f"the worker exited ({process.returncode}) with {done()} of {count} done"
            )
        time.sleep(0.25)
    wall = time.perf_counter() - began
    stop(process)
    return done(), capped, wall


def pickups(
    push: Callable[[int], Any], done: Callable[[], int], count: int, gap_ms: float, timeout: float
) -> Any:
    """Push a first job (``push(-1)``) for the worker to warm up on, then ``count`` more
    ``gap_ms`` apart, and wait until all have run; returns what the first push returned."""
    warm = push(-1)
    wait_until(lambda: done() == 1, 60, "a first job to run")
    time.sleep(0.5)
    paced(count, gap_ms, push)
    wait_until(lambda: done() == count + 1, timeout, "every job to run")
    return warm


class Statuses(NamedTuple):
    """A peer's names for a job that is done, waiting or running, and for its jobs."""

    done: str
    waiting: str
    running: str
    jobs: str = "jobs"


def check_once(
    statuses: dict[str, int],
    repeated: int,
    names: Statuses,
    expected_done: int,
    total: int,
    interrupted: int | None,
) -> None:
    """Every job run at most once (``repeated`` counts those that were not), none lost, and
    none left running beyond the ``interrupted`` ones (any number when None) a stop at the
    time cap may leave. ``statuses`` counts the jobs by the peer's names for them."""
    if (
        statuses.get(names.done, 0) < expected_done
        or sum(statuses.values()) != total
        or repeated
        or (interrupted is not None and statuses.get(names.running, 0) > interrupted)
        or (set(statuses) - {names.done, names.waiting, names.running})
    ):
        raise DriverFailure(f"{names.jobs} by status {statuses}, {repeated} run more than once")


def drained(
    concurrency: int | str, count: int, done: int, capped: bool, span: float, wall: float
) -> dict[str, Any]:
    """A no-op drain's answer: ``done`` of ``count`` jobs over ``span`` seconds of the
    peer's own times (``wall`` seconds of the driver's)."""
    return {
        "concurrency": concurrency,
        "executions": count,
        "completed": done,
        "capped": capped,
        "rate": done / span,
        "window_s": span,
        "wall_s": wall,
    }


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise DriverFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def paced(count: int, gap_ms: float, invoke: Callable[[int], None]) -> None:
    """Call ``invoke`` ``count`` times, ``gap_ms`` apart on a fixed schedule."""
    start = time.perf_counter()
    for n in range(count):
        invoke(n)
        pause = start + (n + 1) * gap_ms / 1000.0 - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(latencies_ms: Sequence[float], count: int, gap_ms: float) -> dict[str, Any]:
    return {
        "executions": count,
        "gap_ms": gap_ms,
        "p50_ms": percentile(latencies_ms, 0.50),
        "p95_ms": percentile(latencies_ms, 0.95),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms),
    }
