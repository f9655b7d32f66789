"""The fault-injection suite is collected with the rest but skipped unless asked for, with
``-m chaos`` or ``CONDUCTOR_CHAOS=1``: it takes a minute or more and restarts a PostgreSQL
cluster (its own)."""

import os
import re

import pytest

ENABLE_VARIABLE = "CONDUCTOR_CHAOS"


def chaos_wanted(config) -> bool:
    if os.environ.get(ENABLE_VARIABLE, "") not in ("", "0"):
        return True
    return re.search(r"\bchaos\b", config.getoption("markexpr") or "") is not None


def pytest_collection_modifyitems(config, items):
    if chaos_wanted(config):
        return
    skip = pytest.mark.skip(
        reason=f"the fault-injection suite runs with `-m chaos` or {ENABLE_VARIABLE}=1"
    )
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)
