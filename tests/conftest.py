import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models.functions import Now

from django_conductor.models import Execution, Step
from django_conductor.registry import registry
from django_conductor.worker import Worker

from .factories import ExecutionFactory, FailedExecutionFactory, StepFactory
from .testapp.models import SideEffect

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_registry():
    """Tasks registered inside a test are removed afterwards."""
    before = dict(registry.tasks)
    duplicates = list(registry.duplicates)
    yield registry
    registry.tasks.clear()
    registry.tasks.update(before)
    registry.duplicates[:] = duplicates


@pytest.fixture
def execution_factory():
    return ExecutionFactory


@pytest.fixture
def step_factory():
    return StepFactory


@pytest.fixture
def failed_execution_factory():
    return FailedExecutionFactory


@pytest.fixture
def run_worker(transactional_db):
    """Drain what is ready with an in-process worker (no signal handlers touched)."""

    def run(**options):
        options.setdefault("burst", True)
        options.setdefault("concurrency", 4)
        worker = Worker(install_signal_handlers=False, **options)
        worker.run()
        return worker

    return run


class WorkerProcess:
    """A real ``manage.py conductor_worker`` (or another ``command``) subprocess on the test
    database."""

    def __init__(self, *args, env=None, command="conductor_worker"):
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CONDUCTOR_DATABASE_NAME": connection.settings_dict["NAME"],
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        command = [sys.executable, "-m", "django", command, "-v", "2", *args]
        # A file rather than a pipe: a test can read what the worker said while it runs.
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by the fixture)
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def output_so_far(self):
        self.log.seek(0)
        return self.log.read()

    def signal(self, signum=signal.SIGTERM):
        self.process.send_signal(signum)

    def wait(self, timeout=30):
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"worker did not exit within {timeout}s:\n{self.output_so_far()}"
            ) from None
        self.output = self.output_so_far()
        return self.process.returncode

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def worker_process(transactional_db):
    """Start real worker processes; every one still alive at the end is killed."""
    started = []

    def start(*args, env=None, command="conductor_worker"):
        proc = WorkerProcess(*args, env=env, command=command)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.log.close()


def database_now():
    """The database's clock, which writes every recorded time; tests compare with it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def wait_until(predicate, timeout=20.0, interval=0.02):
    """Poll a condition a test needs to see; fails with the timeout named."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def effects(kind):
    """The values of the SideEffect rows of ``kind``, in the order they were written."""
    return list(SideEffect.objects.filter(kind=kind).order_by("id").values_list("value", flat=True))


def fast_forward(execution_id):
    """Move an execution's sleep or child deadline into the past instead of waiting."""
    past = Now() - timedelta(seconds=1)
    Step.objects.filter(execution_id=execution_id, finished_at__isnull=True).update(wake_at=past)
    Execution.objects.filter(pk=execution_id).update(run_at=past)
