"""The eager switch: while ``django_conductor.testing.eager()`` is on, ``invoke`` and ``emit``
run what they stored at once, in the caller's process. The testing package sets what runs,
so that the enqueue path depends on nothing above it."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.db import connection, transaction

from .exceptions import ConductorError

Runner = Callable[[], object]

#: What runs the stored work, while eager mode is on in this thread (or task).
runner: ContextVar[Runner | None] = ContextVar("django_conductor_eager", default=None)


def before_enqueue() -> Runner | None:
    """The runner to call once the work is stored, None when eager mode is off. Raises,
    before anything is stored, where the work could never run: in a test case's
    transaction, which is rolled back instead of committed."""
    run = runner.get()
    if run is not None and any(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    ):
        raise ConductorError(
            "Eager mode runs executions as the worker does, after the transaction that "
            "stored them commits; this test runs inside a transaction that never commits "
            "(a TestCase, or pytest-django's `db`). Use a transactional test instead: "
            "TransactionTestCase, `transactional_db`, or @pytest.mark.django_db(transaction=True)."
        )
    return run


def after_enqueue(run: Runner | None) -> None:
    """Run the stored work now, or once the caller's transaction commits: no worker could
    see it before."""
    if run is None:
        return
    if connection.in_atomic_block:
        transaction.on_commit(run)
    else:
        run()
