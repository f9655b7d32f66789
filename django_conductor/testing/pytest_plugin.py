"""The pytest plugin, loaded through the package's ``pytest11`` entry point: the fixtures
``conductor``, ``conductor_eager`` and ``conductor_worker``.

pytest loads it before Django is set up, and in projects without pytest-django too: it
imports the helpers only when a fixture is used, and its fixtures, which need a database,
fail saying so when pytest-django is missing."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import import_module
from typing import Any

import pytest


def _helpers() -> Any:
    return import_module("django_conductor.testing")


class _WithoutPytestDjango:
    """Stands in for pytest-django's ``transactional_db`` when it is not installed, so that
    a test using one of these fixtures fails saying what is missing."""

    @pytest.fixture
    def transactional_db(self) -> None:
        pytest.fail(
            "django_conductor's fixtures need pytest-django (pip install pytest-django): "
            "they run executions in the test's database.",
            pytrace=False,
        )


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("django"):
        config.pluginmanager.register(_WithoutPytestDjango(), "django_conductor-no-django")


# Every attempt's records commit on their own, as on a worker: the fixtures need a
# transactional test database (each test starts empty and its writes are committed).


@pytest.fixture
def conductor(transactional_db: None) -> Any:
    """The test helpers (``drain``, ``run_one``, ``advance``, ``eager``, ``worker``,
    ``assert_invoked``...) on a transactional test database."""
    return _helpers().Conductor()


@pytest.fixture
def conductor_eager(transactional_db: None) -> Iterator[None]:
    """Eager mode for the whole test: ``invoke`` and ``emit`` run what they store at once."""
    with _helpers().eager():
        yield


@pytest.fixture
def conductor_worker(transactional_db: None) -> Iterator[Any]:
    """A real worker running in a thread for the whole test; stopped at its end."""
    with _helpers().worker_thread() as worker:
        yield worker
