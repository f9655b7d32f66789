"""The fault-injection suite as a test: ``python -m pytest -m chaos`` runs the small size
(``CONDUCTOR_CHAOS_SIZE=full`` for the full one) in a process of its own, with its own
settings and cluster, and fails on any violation, showing the table."""

import os
import subprocess
import sys

import pytest

from .workers import ROOT

pytestmark = pytest.mark.chaos


def test_faults_break_no_guarantee():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    size = os.environ.get("CONDUCTOR_CHAOS_SIZE", "small")
    command = [sys.executable, "-m", "tests.chaos", "--size", size]
    if os.environ.get("CONDUCTOR_CHAOS_SEED"):
        command += ["--seed", os.environ["CONDUCTOR_CHAOS_SEED"]]
    timeout = 900 if size == "small" else 3600
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
