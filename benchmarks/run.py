"""Benchmark django_conductor on this machine: ``python benchmarks/run.py``.

Measures, in one run and on a fresh ``conductor_bench`` database, no-op throughput (one and
two worker processes), step checkpoints, pickup latency, invoke rates, the sleep/child round
trip, behaviour with a million finished rows, worker memory, and PostgreSQL's own one-row
INSERT rate (pgbench); with ``--peers``, the no-op and pickup workloads on five other task
queues; with ``--only scaleout`` (too long for the default run), backlogs drained by 1, 2
and 4 workers beside the CPU each side spent. Prints a markdown table, writes JSON (default
``benchmarks/results/latest.json``), and exits non-zero if any execution was lost or
duplicated. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"

WORKLOADS = (
    "pgbench",
    "invoke",
    "noop",
    "noop2",
    "steps",
    "pickup",
    "sleep-child",
    "memory",
    "scale",
    "parked",
    "cron",
    "emit",
    "row-trigger",
    "limits",
    "prune",
    "batch",
    "telemetry",
    "peers",
    "scaleout",
)
#: Workloads too long for the default run: they run only when named with ``--only``.
OPT_IN = frozenset({"scaleout"})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark django_conductor against PostgreSQL (DATABASE_URL, or the "
        "embedded server) and, with --peers, against other PostgreSQL task queues.",
        epilog=f"Workloads, in the order they run: {', '.join(WORKLOADS)}; "
        f"{', '.join(sorted(OPT_IN))} only when named with --only.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small smoke run (about a tenth of the sizes)"
    )
    parser.add_argument(
        "--size",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="multiply every workload's size by FACTOR (default 1; applied after --quick)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="also run the no-op and pickup workloads on Procrastinate, django-tasks-db, DBOS, "
        "Chancy and Absurd, each installed by pip into its own virtualenv under "
        "benchmarks/.peers/",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these workloads (repeat, or separate with commas)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="NAME", help="skip these workloads"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run each of our workloads N times and keep the median run (default 1)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        metavar="PATH",
        help="where to write the results (default: benchmarks/results/latest.json)",
    )
    parser.add_argument(
        "--database",
        default=os.environ.get("CONDUCTOR_BENCH_DATABASE", "conductor_bench"),
        help="the benchmark database, dropped and created afresh (default: conductor_bench)",
    )
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="let psycopg prepare statements (OPTIONS prepare_threshold 1), as a project on a "
        "direct connection may; Django's default turns preparing off, for connection poolers",
    )
    parser.add_argument(
        "--fail-on-miss",
        action="store_true",
        help="exit 3 when a target is missed (correctness failures always exit 1)",
    )
    args = parser.parse_args(argv)
    args.only = _names(parser, args.only)
    args.skip = _names(parser, args.skip)
    if "peers" in args.only:
        args.peers = True
    return args


def _names(parser: argparse.ArgumentParser, values: list[str]) -> set[str]:
    names = {n.strip() for value in values for n in value.split(",") if n.strip()}
    unknown = names - set(WORKLOADS)
    if unknown:
        parser.error(
            f"unknown workload {', '.join(sorted(unknown))}; known: {', '.join(WORKLOADS)}"
        )
    return names


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["CONDUCTOR_BENCH_DATABASE"] = args.database
    if args.prepare:
        os.environ["CONDUCTOR_BENCH_PREPARE"] = "1"

    from benchmarks import harness, pgbench, report, workloads

    sizes = workloads.Sizes.quick() if args.quick else workloads.Sizes()
    if args.size != 1.0:
        sizes = sizes.scaled(args.size)
    selected = [
        name
        for name in WORKLOADS
        if (not args.only or name in args.only)
        and name not in args.skip
        and (name != "peers" or args.peers)
        and (name not in OPT_IN or name in args.only)
    ]

    say(f"Preparing database {args.database!r} ...")
    harness.recreate_database(args.database)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    plans: dict[str, Any] = {
        "pgbench": lambda: pgbench.run(sizes.pgbench_seconds),
        "invoke": lambda: workloads.invoke_rate(sizes),
        "noop": lambda: workloads.noop_throughput(sizes, workers=1),
        "noop2": lambda: workloads.noop_throughput(sizes, workers=2),
        "steps": lambda: workloads.steps(sizes),
        "pickup": lambda: workloads.pickup(sizes),
        "sleep-child": lambda: workloads.sleep_child(sizes),
        "memory": lambda: workloads.memory(sizes),
        "scale": lambda: workloads.scale(sizes),
        "parked": lambda: workloads.parked(sizes),
        "cron": lambda: workloads.cron(sizes),
        "emit": lambda: workloads.emit_rate(sizes),
        "row-trigger": lambda: workloads.row_trigger(sizes),
        "limits": lambda: workloads.limits(sizes),
        "prune": lambda: workloads.prune(sizes),
        "batch": lambda: workloads.batch(sizes),
        "telemetry": lambda: workloads.telemetry(sizes),
        "peers": lambda: _peers(sizes),
        "scaleout": lambda: workloads.scaleout(sizes),
    }
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    load_before = _load()
    if load_before is not None and load_before > 0.5 * (os.cpu_count() or 1):
        say(
            f"Note: the machine is busy before the run (load average {load_before:.1f} over "
            f"{os.cpu_count()} CPUs): the figures will be lower and noisier than on a quiet one."
        )
    started = time.perf_counter()
    for name in selected:
        say(f"[{name}] running ...")
        began = time.perf_counter()
        try:
            times = 1 if name == "peers" else max(1, args.repeat)
            results[name] = _median(name, [plans[name]() for _ in range(times)])
        except harness.BenchmarkFailure as exc:
            failures[name] = str(exc)
            say(f"[{name}] FAILED: {exc}")
        except Exception as exc:
            failures[name] = f"{type(exc).__name__}: {exc}"
            say(f"[{name}] FAILED with an error:\n{traceback.format_exc()}")
        else:
            say(f"[{name}] done in {time.perf_counter() - began:.1f}s: {_brief(results[name])}")
    total = time.perf_counter() - started

    table = report.main_table(results, failures)
    peers = report.peers_table(results)
    print()
    print(table)
    if peers:
        print()
        print(peers)
    print()
    print(f"Total {total:.0f}s. Figures are from the database clock: see docs/performance.md.")

    document = {
        "meta": {**_meta(args, sizes, total), "load_before": load_before, "load_after": _load()},
        "results": results,
        "targets": [t.as_json() for t in report.targets(results)],
        "failures": failures,
        "table": table,
        "peers_table": peers,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    say(f"Wrote {args.json}")

    if failures:
        say("")
        say("=" * 72)
        say(f"BENCHMARK FAILED: {len(failures)} workload(s) failed; see above:")
        for name, message in failures.items():
            say(f"  {name}: {message.splitlines()[0]}")
        say("=" * 72)
        return 1
    measured = [t for t in report.targets(results) if t.measured is not None]
    if args.fail_on_miss and any(not t.passed for t in measured):
        return 3
    return 0


def _peers(sizes: Any) -> dict[str, Any]:
    from benchmarks import peering

    return peering.run_all(sizes, say)


#: The figure that orders repeated runs of a workload, for ``--repeat``.
PRIMARY = {
    "pgbench": ("c1_tps",),
    "invoke": ("single_rate",),
    "noop": ("rate",),
    "noop2": ("rate",),
    "steps": ("rate",),
    "pickup": ("p50_ms",),
    "sleep-child": ("rate",),
    "memory": ("c20", "peak_rss_mb"),
    "scale": ("ratio",),
    "parked": ("ratio",),
    "cron": ("idle_p50_ms",),
    "emit": ("to_1", "events_per_s"),
    "row-trigger": ("ratio",),
    "limits": ("mixed_loss",),
    "prune": ("ratio",),
    "batch": ("speedup",),
    "telemetry": ("otel_ratio",),
    "scaleout": ("noop", "drains", "1", "rate"),
}


def _median(name: str, runs: list[Any]) -> Any:
    """The run whose primary figure is the median, with every run's figure beside it."""
    if len(runs) == 1 or name not in PRIMARY:
        return runs[0]

    def figure(run: Any) -> float:
        value = run
        for key in PRIMARY[name]:
            value = value.get(key, float("nan")) if isinstance(value, dict) else float("nan")
        return float(value)

    ordered = sorted(runs, key=figure)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["repeats"] = [figure(run) for run in runs]
    return chosen


def _load() -> float | None:
    """The one-minute load average, where the system keeps one."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _brief(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)
    keys = ("rate", "p50_ms", "p99_ms", "single_rate", "many_rate", "ratio", "c1_tps", "c4_tps")
    parts = [f"{k}={result[k]:,.1f}" for k in keys if isinstance(result.get(k), int | float)]
    return ", ".join(parts) or ", ".join(sorted(result))[:120]


def _meta(args: argparse.Namespace, sizes: Any, total: float) -> dict[str, Any]:
    import django
    import psycopg

    from benchmarks import harness

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--", "django_conductor")),
        "python": platform.python_version(),
        "django": django.get_version(),
        "psycopg": psycopg.__version__,
        "postgresql": harness.server_version(),
        "server": "DATABASE_URL" if os.environ.get("DATABASE_URL") else "embedded",
        "database": args.database,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "quick": args.quick,
        "sizes": asdict(sizes),
        "total_s": total,
    }


if __name__ == "__main__":
    sys.exit(main())
