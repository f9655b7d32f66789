"""The store's shape: every statement passes through ``store.base.execute()``, spells no
status and no table by hand, and names the tables the models name."""

import ast
import re
from pathlib import Path

from django_conductor.models import (
    ConcurrencyLimit,
    Execution,
    FailedExecution,
    Schedule,
    Step,
    WorkerHeartbeat,
)
from django_conductor.statuses import Status
from django_conductor.store import base

PACKAGE = Path(__file__).resolve().parent.parent / "django_conductor"
HOOK = PACKAGE / "store" / "base.py"


def sources():
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def test_every_statement_passes_through_the_one_execute():
    direct = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"execute", "executemany", "copy", "stream"}
            ):
                direct.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    # The hook itself calls cursor.execute twice (with and without prepare); nothing else may.
    assert [d for d in direct if not d.startswith("store/base.py:")] == []
    assert len(direct) == 2


def test_no_statement_spells_a_status_by_hand():
    spelled = re.compile("'(" + "|".join(status.value for status in Status) + ")'")
    found = [
        f"{path.relative_to(PACKAGE)}: {match.group(0)}"
        for path in (PACKAGE / "store").glob("*.py")
        if path != HOOK  # where the literals are made from Status
        for match in spelled.finditer(path.read_text())
    ]
    assert found == []


def test_the_store_names_the_tables_the_models_name():
    assert Execution._meta.db_table == base.EXECUTION
    assert Step._meta.db_table == base.STEP
    assert FailedExecution._meta.db_table == base.FAILURES
    assert WorkerHeartbeat._meta.db_table == base.HEARTBEAT
    assert Schedule._meta.db_table == base.SCHEDULE
    assert ConcurrencyLimit._meta.db_table == base.LIMIT
    models = (Execution, Step, FailedExecution, WorkerHeartbeat, Schedule, ConcurrencyLimit)
    assert set(base.TABLES) == {model._meta.db_table for model in models}
