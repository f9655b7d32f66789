"""Real ``conductor_worker`` processes that the faults hit. Each start is an incarnation with
its own worker id and application name (``chaos-w<slot>-<n>``), so that its connections can
be found in ``pg_stat_activity`` and its ledger rows told apart by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class Incarnation:
    slot: int
    number: int
    process: subprocess.Popen
    log_path: Path
    log: IO[str]
    started_at: float = field(default_factory=time.time)
    #: What the harness did to it: "kill", "term", "stop" (until "cont"), "final-term".
    fate: str | None = None
    fate_at: float | None = None
    stopped: bool = False
    exit_code: int | None = None
    exited_at: float | None = None

    @property
    def worker_id(self) -> str:
        return f"chaos-w{self.slot}-{self.number}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        if self.exit_code is None:
            code = self.process.poll()
            if code is not None:
                self.exit_code, self.exited_at = code, time.time()
                self.log.close()
        return self.exit_code

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class WorkerPool:
    def __init__(self, *, slots: int, concurrency: int, env: dict[str, str], log_dir: Path):
        self.slots = slots
        self.concurrency = concurrency
        self.env = env
        self.log_dir = log_dir
        self.all: list[Incarnation] = []
        self.current: dict[int, Incarnation] = {}

    def start(self, slot: int) -> Incarnation:
        number = sum(1 for inc in self.all if inc.slot == slot) + 1
        worker_id = f"chaos-w{slot}-{number}"
        log_path = self.log_dir / f"{worker_id}.log"
        log = log_path.open("w")
        env = {**self.env, "PGAPPNAME": worker_id}
        command = [
            sys.executable,
            "-m",
            "django",
            "conductor_worker",
            "-v",
            "2",
            "--concurrency",
            str(self.concurrency),
            "--worker-id",
            worker_id,
        ]
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        incarnation = Incarnation(slot, number, process, log_path, log)
        self.all.append(incarnation)
        self.current[slot] = incarnation
        return incarnation

    def start_all(self) -> None:
        for slot in range(1, self.slots + 1):
            self.start(slot)

    def by_pid(self) -> dict[int, Incarnation]:
        return {inc.pid: inc for inc in self.all}

    def healthy(self) -> list[Incarnation]:
        """Running, not paused, not being stopped: what the next fault may hit."""
        return [
            inc
            for inc in self.current.values()
            if inc.poll() is None and not inc.stopped and inc.fate not in ("term", "final-term")
        ]

    def send(self, inc: Incarnation, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(inc.pid, signum)

    def kill_everything(self) -> None:
        """The last resort of every run: nothing the suite started outlives it."""
        for inc in self.all:
            if inc.process.poll() is None:
                self.send(inc, signal.SIGCONT)
                self.send(inc, signal.SIGKILL)
        for inc in self.all:
            with contextlib.suppress(subprocess.TimeoutExpired):
                inc.process.wait(30)
            inc.poll()
            if not inc.log.closed:
                inc.log.close()
