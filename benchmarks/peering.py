"""Workloads 1 and 3 on other PostgreSQL task queues, for the side-by-side table.

Each peer is installed by pip from PyPI into its own virtualenv under ``benchmarks/.peers/``
and driven by a small script in ``benchmarks/peers/`` that runs inside that virtualenv,
against the same PostgreSQL server as the rest of the run but a database of its own. A peer
that cannot be installed or run is reported with the reason; the run goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .harness import RESULTS_DIR, ROOT, conninfo, recreate_database, server_settings

VENVS = ROOT / "benchmarks" / ".peers"
DRIVERS = ROOT / "benchmarks" / "peers"
PIP_TIMEOUT = 900


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: tuple[str, ...]
    driver: str
    #: Also drain at this concurrency (ours runs 10 executions at once by default).
    also_concurrency: int | None = None

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def python(self) -> Path:
        return self.venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


PEERS = (
    Peer("procrastinate", ("procrastinate", "psycopg[binary]"), "procrastinate_driver.py", 10),
    # [compat] brings the django-tasks backport on Django before 6.0.
    Peer("django-tasks-db", ("django-tasks-db[compat]", "psycopg[binary]"), "djtasks_driver.py"),
    Peer("dbos", ("dbos", "psycopg[binary]"), "dbos_driver.py"),
    Peer("chancy", ("chancy[cli]", "psycopg[binary]"), "chancy_driver.py", 10),
    # absurdctl brings Absurd's schema (its SQL is bundled in the package).
    Peer("absurd", ("absurd-sdk", "absurdctl", "psycopg[binary]"), "absurd_driver.py", 10),
)


class PeerUnavailable(Exception):
    pass


def install(peer: Peer, say: Callable[[str], None]) -> None:
    """Create the virtualenv and pip-install the peer, unless an earlier run did."""
    marker = peer.venv / "benchmark-requirements.json"
    wanted = json.dumps(list(peer.requirements))
    if peer.python.exists() and marker.exists() and marker.read_text() == wanted:
        return
    say(f"  installing {' '.join(peer.requirements)} into {peer.venv.relative_to(ROOT)} ...")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(peer.venv)],
        [str(peer.python), "-m", "pip", "install", "--quiet", *peer.requirements],
    ]
    for command in steps:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"{command[2]} timed out after {PIP_TIMEOUT}s") from None
        if done.returncode != 0:
            lines = [
                line
                for line in (done.stderr or done.stdout).splitlines()
                if line.strip() and not line.startswith("WARNING: Location")
            ]
            reason = lines[-1] if lines else f"exit {done.returncode}"
            raise PeerUnavailable(f"could not install: {reason[:300]}")
    marker.write_text(wanted)


def drive(peer: Peer, workload: str, env: dict[str, str], timeout: float, *extra: str) -> Any:
    """Run one workload of the peer's driver; its answer is the last line of its output."""
    command = [str(peer.python), str(DRIVERS / peer.driver), workload, *extra]
    command += ["--logs", str(RESULTS_DIR / "logs")]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
            cwd=DRIVERS,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"{workload} did not finish within {timeout:.0f}s"}
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        tail = (done.stderr or done.stdout).strip().splitlines()
        return {
            "error": f"{workload} failed (exit {done.returncode}): "
            + (tail[-1] if tail else "no output")
        }
    return answer


def run_peer(peer: Peer, sizes: Any, say: Callable[[str], None]) -> dict[str, Any]:
    install(peer, say)
    database = f"{server_settings()['NAME']}_{peer.name.replace('-', '_')}"
    recreate_database(database)
    db = server_settings()
    django_db = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": database,
        **{key: str(db[key]) for key in ("USER", "PASSWORD", "HOST", "PORT") if db.get(key)},
    }
    env = {
        **os.environ,
        "BENCH_PEER_CONNINFO": conninfo(database),
        "BENCH_PEER_DATABASE": json.dumps(django_db),
        "PYTHONPATH": str(DRIVERS),
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    result: dict[str, Any] = {}
    setup = drive(peer, "setup", env, 300)
    if "error" in setup:
        raise PeerUnavailable(setup["error"])
    result["version"] = setup.get("version", "")
    cap = sizes.peer_drain_cap_s
    say(f"  {peer.name} {result['version']}: no-op throughput ({sizes.peer_noop:,} jobs) ...")
    result["noop"] = drive(
        peer, "noop", env, cap + 300, "--count", str(sizes.peer_noop), "--cap", str(cap)
    )
    if peer.also_concurrency:
        say(f"  {peer.name}: no-op throughput at concurrency {peer.also_concurrency} ...")
        result["noop_more"] = drive(
            peer,
            "noop",
            env,
            cap + 300,
            "--count",
            str(sizes.peer_noop),
            "--cap",
            str(cap),
            "--concurrency",
            str(peer.also_concurrency),
        )
    say(f"  {peer.name}: pickup latency ({sizes.peer_pickup} jobs) ...")
    result["pickup"] = drive(
        peer,
        "pickup",
        env,
        600,
        "--count",
        str(sizes.peer_pickup),
        "--gap-ms",
        str(sizes.pickup_gap_ms),
    )
    return result


def run_all(sizes: Any, say: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for peer in PEERS:
        try:
            results[peer.name] = run_peer(peer, sizes, say)
            more = results[peer.name].pop("noop_more", None)
            if more is not None:
                results[f"{peer.name}-c{peer.also_concurrency}"] = {
                    "version": results[peer.name]["version"],
                    "noop": more,
                }
        except PeerUnavailable as exc:
            results[peer.name] = {"error": str(exc)}
        except Exception as exc:  # a peer's trouble never stops the run
            results[peer.name] = {"error": f"{type(exc).__name__}: {exc}"}
        for part in ("noop", "pickup"):
            error = (results[peer.name].get(part) or {}).get("error")
            if error:
                say(f"  {peer.name} {part}: {error}")
        if "error" in results[peer.name]:
            say(f"  {peer.name}: {results[peer.name]['error']}")
    return results
