"""The public API type-checks as DESIGN.md describes it: mypy, strict, on a user's module."""

import textwrap

import pytest
from mypy import api

from .conftest import ROOT

USER_MODULE = """
from typing import assert_type

from django_conductor import (
    Context, Event, ExecutionHandle, Task, cancel, invoke, retry, run_now, task,
)


def handler(event: Event, ctx: Context) -> None:
    ctx.step("a", lambda: 1)


bare = task(handler)
assert_type(bare, Task)
named = task(name="typed-task", max_attempts=5)(handler)
assert_type(named, Task)
assert_type(bare.invoke({"order": 1}), ExecutionHandle)
assert_type(bare.invoke_many([1, 2]), list[ExecutionHandle])
assert_type(bare.invoke({"order": 1}, throttle=60), ExecutionHandle | None)
assert_type(invoke("typed-task", {"order": 1}, throttle=60), ExecutionHandle | None)
assert_type(invoke("typed-task", {"order": 1}), ExecutionHandle)
assert_type(retry(1), bool)
assert_type(cancel(1), bool)
assert_type(run_now(1), bool)
assert_type(invoke("typed-task").status(), str)
"""


@pytest.mark.slow
def test_the_public_api_type_checks_strictly(tmp_path):
    module = tmp_path / "users_tasks.py"
    module.write_text(textwrap.dedent(USER_MODULE))
    config = str(ROOT / "pyproject.toml")
    out, err, status = api.run(["--config-file", config, "--strict", str(module)])
    assert status == 0, out + err
