"""Plumbing shared by the workloads: the benchmark database, real worker processes, the
measurement window read from the database clock, the CPU time spent over it, and the
loss/duplication checks."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
SETTINGS_MODULE = "benchmarks.bench_settings"

EXECUTION = "django_conductor_execution"
STEP = "django_conductor_step"
TABLES = (
    "django_conductor_step",
    "django_conductor_failedexecution",
    "django_conductor_workerheartbeat",
    "django_conductor_execution",
    "django_conductor_schedule",
)


class BenchmarkFailure(Exception):
    """An execution was lost or duplicated, or a workload did not finish: the run fails."""


# -- the database ----------------------------------------------------------------------


def server_settings() -> dict[str, Any]:
    """``DATABASES["default"]`` of the benchmark settings (server, user, database name)."""
    from django.conf import settings

    return dict(settings.DATABASES["default"])


def conninfo(dbname: str | None = None) -> str:
    """A libpq connection string for the benchmark server, on ``dbname`` if given."""
    db = server_settings()
    options = {
        "host": db.get("HOST") or None,
        "port": str(db["PORT"]) if db.get("PORT") else None,
        "user": db.get("USER") or None,
        "password": db.get("PASSWORD") or None,
        "dbname": dbname or db["NAME"],
    }
    return make_conninfo(**{k: v for k, v in options.items() if v})


def maintenance_database() -> str:
    """A database to connect to while creating or dropping the benchmark ones."""
    from django_conductor.devdb import database_config

    name = database_config().get("NAME") or "postgres"
    return "postgres" if name == server_settings()["NAME"] else name


def recreate_database(name: str) -> None:
    """Drop ``name`` if it exists and create it empty."""
    with psycopg.connect(conninfo(maintenance_database()), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def server_version() -> str:
    with psycopg.connect(conninfo(), autocommit=True) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def query(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def execute(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def reset_tables() -> None:
    """Empty every django_conductor table and flush dirty pages, so workloads start equal."""
    execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    with contextlib.suppress(Exception):
        execute("CHECKPOINT")  # needs superuser or pg_checkpoint; only lowers noise


def analyze() -> None:
    execute(f"ANALYZE {EXECUTION}")
    execute(f"ANALYZE {STEP}")


# -- measurement -----------------------------------------------------------------------


@dataclass
class Window:
    """Executions of one task, and the span from the first claim to the last completion,
    both read from the database clock (``started_at`` is set by the claim's ``now()``,
    ``finished_at`` by the completion's); ``began`` and ``ended`` are its ends as Unix
    times, to line other measurements up with it."""

    count: int
    seconds: float
    began: float = 0.0
    ended: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else float("nan")


def window(task_name: str) -> Window:
    (row,) = query(
        f"SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))::float, "
        f"extract(epoch FROM min(started_at))::float, extract(epoch FROM max(finished_at))::float "
        f"FROM {EXECUTION} WHERE task_name = %s AND status = 'completed'",
        [task_name],
    )
    return Window(int(row[0]), float(row[1] or 0.0), float(row[2] or 0.0), float(row[3] or 0.0))


def server_is_local() -> bool:
    """Whether the benchmark's PostgreSQL server runs on this machine (a socket or a
    loopback address), so that its processes' CPU time can be read here."""
    host = str(server_settings().get("HOST") or "")
    return not host or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


#: What the scale-out rows say instead of the database's CPU share on a remote server.
DATABASE_CPU_NOT_LOCAL = "database CPU not measured: the server is not on this machine"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Snapshot:
    """One reading of /proc: the time, the machine's busy and total CPU ticks, and each
    process's CPU ticks, keyed by (pid, start time) so a reused pid is another process."""

    at: float
    busy: int
    total: int
    processes: dict[tuple[int, int], tuple[str, int]]


@dataclass
class CpuUsage:
    """CPU seconds spent between two snapshots ``seconds`` apart on ``cpus`` cores: the
    machine's busy time, the worker processes', and the PostgreSQL server processes' (all
    of them, and the backends serving the benchmark database); None where not measured."""

    seconds: float
    cpus: int
    machine_s: float
    workers_s: float
    database_s: float | None
    own_backends_s: float | None

    def figures(self, executions: int) -> dict[str, Any]:
        """Each as a share of the machine's capacity (cores x span), and per 1,000
        executions, so a reader sees what one execution costs the database and the worker."""
        capacity = self.cpus * self.seconds
        result: dict[str, Any] = {"span_s": self.seconds, "cpus": self.cpus}
        for name in ("machine", "database", "own_backends", "workers"):
            value = getattr(self, f"{name}_s")
            result[f"{name}_s"] = value
            result[f"{name}_share"] = value / capacity if value is not None and capacity else None
            result[f"{name}_s_per_1000"] = (
                value * 1000 / executions if value is not None and executions else None
            )
        return result


class CpuSampler:
    """Reads /proc every ``every`` seconds while the block runs: the machine's CPU ticks,
    and those of the worker processes (``pids``) and of PostgreSQL's (comm ``postgres*``,
    the embedded server's and the system one's), if ``database`` (the server is local).
    A process's last reading is kept after it exits, so a finished worker or a closed
    backend still counts; ``usage()`` then gives the CPU spent between two Unix times."""

    def __init__(self, pids: Sequence[int], *, database: bool = True, every: float = 0.1):
        self.pids = set(pids)
        self.database = database
        self.every = every
        self.snapshots: list[Snapshot] = []
        self._own = f" {server_settings()['NAME']} "
        self._groups: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-cpu", daemon=True)

    def __enter__(self) -> CpuSampler:
        self.snapshots.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.snapshots.append(self._read())

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.snapshots.append(self._read())

    def _read(self) -> Snapshot:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = fields[3] + fields[4]  # idle and iowait
        processes: dict[tuple[int, int], tuple[str, int]] = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    self._process(int(entry.name), processes)
        return Snapshot(time.time(), sum(fields) - idle, sum(fields), processes)

    def _process(self, pid: int, into: dict[tuple[int, int], tuple[str, int]]) -> None:
        """Add one process's CPU ticks under its group, if it is in one. A pid's group is
        decided once (a pid is not reused within a drain), so that a reading stays cheap."""
        group = self._groups.get(pid)
        if group == "":
            return
        stat = Path(f"/proc/{pid}/stat").read_text()
        if group is None:
            group = self._group(pid, stat[stat.index("(") + 1 : stat.rindex(")")])
            self._groups[pid] = group
            if not group:
                return
        rest = stat[stat.rindex(")") + 2 :].split()  # from field 3, the state
        into[(pid, int(rest[19]))] = (group, int(rest[11]) + int(rest[12]))

    def _group(self, pid: int, comm: str) -> str:
        if pid in self.pids:
            return "workers"
        if self.database and comm.startswith("postgres"):
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            return "own_backends" if self._own in title else "postgres"
        return ""

    def usage(self, began: float, ended: float) -> CpuUsage:
        """The CPU spent from the last snapshot at or before ``began`` to the first at or
        after ``ended`` (Unix times: the window's, on this machine's clock)."""
        first = max((s for s in self.snapshots if s.at <= began), key=lambda s: s.at, default=None)
        last = min((s for s in self.snapshots if s.at >= ended), key=lambda s: s.at, default=None)
        first, last = first or self.snapshots[0], last or self.snapshots[-1]
        seen: dict[tuple[int, int], tuple[str, int]] = {}
        for snapshot in self.snapshots:
            if first.at <= snapshot.at <= last.at:
                seen.update(snapshot.processes)  # the last reading of each process
        spent = {"workers": 0, "postgres": 0, "own_backends": 0}
        for key, (group, ticks) in seen.items():
            spent[group] += ticks - first.processes.get(key, (group, 0))[1]
        database = (spent["postgres"] + spent["own_backends"]) / CLOCK_TICKS
        cpus = os.cpu_count() or 1
        return CpuUsage(
            seconds=last.at - first.at,
            cpus=cpus,
            machine_s=(last.busy - first.busy) / CLOCK_TICKS,
            workers_s=spent["workers"] / CLOCK_TICKS,
            database_s=database if self.database else None,
            own_backends_s=spent["own_backends"] / CLOCK_TICKS if self.database else None,
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (as numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- correctness -----------------------------------------------------------------------


def verify(
    task_name: str,
    expected: int,
    *,
    claims: int | None = 1,
    max_claims: int | None = None,
    attempts: int | None = 1,
    steps_each: int | None = None,
) -> None:
    """Fail loudly unless exactly ``expected`` executions of ``task_name`` completed, each
    claimed ``claims`` times (or 1 to ``max_claims`` times) and run in ``attempts``
    attempts, with ``steps_each`` finished steps each."""
    problems: list[str] = []
    by_status = dict(
        query(
            f"SELECT status, count(*) FROM {EXECUTION} WHERE task_name = %s GROUP BY status",
            [task_name],
        )
    )
    if by_status != {"completed": expected}:
        problems.append(f"expected {expected} completed, found {by_status or 'none'}")
    for column, wanted in (("claims", claims), ("attempts", attempts)):
        if wanted is None:
            continue
        (row,) = query(
            f"SELECT count(*), min({column}), max({column}) FROM {EXECUTION} "
            f"WHERE task_name = %s AND {column} <> %s",
            [task_name, wanted],
        )
        if row[0]:
            problems.append(
                f"{row[0]} executions with {column} != {wanted} (from {row[1]} to {row[2]})"
            )
    if max_claims is not None:
        (row,) = query(
            f"SELECT count(*), max(claims) FROM {EXECUTION} "
            f"WHERE task_name = %s AND claims NOT BETWEEN 1 AND %s",
            [task_name, max_claims],
        )
        if row[0]:
            problems.append(
                f"{row[0]} executions claimed more than {max_claims} times (up to {row[1]})"
            )
    if steps_each is not None:
        (row,) = query(
            f"SELECT count(*), count(DISTINCT s.execution_id), "
            f"count(*) FILTER (WHERE s.finished_at IS NULL) "
            f"FROM {STEP} s JOIN {EXECUTION} e ON e.id = s.execution_id WHERE e.task_name = %s",
            [task_name],
        )
        total, executions, unfinished = row
        if total != expected * steps_each or executions != expected or unfinished:
            problems.append(
                f"expected {expected * steps_each} finished steps over {expected} executions, "
                f"found {total} over {executions} ({unfinished} unfinished)"
            )
    if problems:
        raise BenchmarkFailure(f"{task_name}: " + "; ".join(problems))


# -- worker processes ------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
        **extra,
    }


@dataclass
class WorkerProcess:
    """A real ``python -m django conductor_worker`` process on the benchmark settings,
    its output in ``results/logs/``, its resident memory sampled while it runs."""

    name: str
    args: Sequence[str] = ()
    #: Environment variables of its own, over the benchmark's.
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] = field(init=False)
    started: float = field(init=False)
    ended: float | None = field(init=False, default=None)
    peak_rss: int = field(init=False, default=0)
    cpu_s: float = field(init=False, default=0.0)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        logs = RESULTS_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{self.name}.log"
        command = [sys.executable, "-m", "django", "conductor_worker", *self.args]
        with self.log_path.open("wb") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=child_env(**self.env), stdout=log, stderr=subprocess.STDOUT
            )
        self._ps = psutil.Process(self.process.pid)

    def sample(self) -> None:
        """Record resident memory now, the kernel's high-water mark where it keeps one, and
        the CPU time used so far."""
        if self.ended is not None:
            return
        with contextlib.suppress(psutil.Error):
            self.peak_rss = max(self.peak_rss, self._ps.memory_info().rss)
            times = self._ps.cpu_times()
            self.cpu_s = times.user + times.system
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{self.process.pid}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss = max(self.peak_rss, int(line.split()[1]) * 1024)

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None and self.ended is None:
            self.ended = time.perf_counter()
        return code

    @property
    def wall(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM (a graceful stop), SIGKILL if it does not exit within ``timeout``."""
        if self.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.poll()
        return self.process.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def wait_for_exit(
    workers: Sequence[WorkerProcess],
    timeout: float,
    progress: Callable[[], int] | None = None,
    stall: float = 30.0,
) -> None:
    """Wait for burst workers to drain and exit, sampling their memory meanwhile. Fails
    after ``timeout``, or once ``progress()`` (a count of finished work, read every second)
    has not moved for ``stall`` seconds."""
    now = time.perf_counter()
    deadline, last_check, last_change, last_value = now + timeout, now, now, -1
    problem = ""
    while True:
        for worker in workers:
            worker.sample()
        if all(worker.poll() is not None for worker in workers):
            break
        now = time.perf_counter()
        if progress is not None and now - last_check >= 1.0:
            last_check, value = now, progress()
            if value != last_value:
                last_value, last_change = value, now
            elif now - last_change > stall:
                problem = f"no progress for {stall:.0f}s ({value} done)"
        if now > deadline:
            problem = f"workers did not finish within {timeout:.0f}s"
        if problem:
            for worker in workers:
                worker.terminate(timeout=5)
            raise BenchmarkFailure(
                f"{problem}; {_last_line(workers)}\n"
                + "\n".join(worker.tail() for worker in workers)
            )
        time.sleep(0.02)
    failed = [w for w in workers if w.process.returncode != 0]
    if failed:
        raise BenchmarkFailure(
            "worker exited with "
            + ", ".join(f"{w.name}: {w.process.returncode}" for w in failed)
            + f"; {_last_line(failed)}\n"
            + "\n".join(w.tail() for w in failed)
        )


def _last_line(workers: Sequence[WorkerProcess]) -> str:
    """The worker's last warning or error, for the one-line summary of a failure."""
    for worker in workers:
        for line in reversed(worker.tail(40).splitlines()):
            if any(word in line for word in ("WARNING", "ERROR", "Error", "Traceback")):
                return f"the worker said: {line.strip()[:200]}"
    return "see the worker logs in benchmarks/results/logs/"


def wait_until(condition: Any, timeout: float, what: str, *, every: float = 0.05) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise BenchmarkFailure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def running(worker: WorkerProcess) -> Iterator[WorkerProcess]:
    """A long-running worker that is stopped (gracefully) when the block ends."""
    try:
        yield worker
    except BaseException:
        worker.terminate(timeout=5)
        raise
    code = worker.terminate()
    if code not in (0, -signal.SIGTERM):
        raise BenchmarkFailure(
            f"worker {worker.name} exited with {code}; last output:\n{worker.tail()}"
        )


def completed(*task_names: str) -> int:
    (row,) = query(
        f"SELECT count(*) FROM {EXECUTION} WHERE task_name = ANY(%s) AND status = 'completed'",
        [list(task_names)],
    )
    return int(row[0])


def step_rows(task_name: str) -> int:
    (row,) = query(
        f"SELECT count(*) FROM {STEP} s JOIN {EXECUTION} e ON e.id = s.execution_id "
        f"WHERE e.task_name = %s",
        [task_name],
    )
    return int(row[0])


def drain_timeout(count: int, floor: float = 60.0) -> float:
    """Generous: a worker slower than 100 executions/s is broken for this purpose."""
    return max(floor, count / 100.0)
