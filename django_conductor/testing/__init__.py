"""Helpers for testing code that uses django_conductor: run what is ready in the test's
thread (``drain``, ``run_one``), run ``invoke`` at once (``eager``), move time (``advance``),
a worker in a thread (``worker_thread``) and assertions on what was invoked. The pytest
plugin (``pytest_plugin``) serves them as fixtures.

The names are imported on first use, as the package's are: pytest loads the plugin before
Django is set up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exports import on_first_use

if TYPE_CHECKING:
    from .assertions import ANY, assert_invoked, assert_not_invoked, invoked
    from .conductor import Conductor
    from .draining import Drained, DrainLimitExceeded, NotRunnable, drain, run_one
    from .eager_mode import eager
    from .threads import worker_thread
    from .time_travel import advance

_HOMES = {
    "ANY": "assertions",
    "assert_invoked": "assertions",
    "assert_not_invoked": "assertions",
    "invoked": "assertions",
    "Conductor": "conductor",
    "DrainLimitExceeded": "draining",
    "Drained": "draining",
    "NotRunnable": "draining",
    "drain": "draining",
    "run_one": "draining",
    "eager": "eager_mode",
    "worker_thread": "threads",
    "advance": "time_travel",
}

__all__ = [
    "ANY",
    "Conductor",
    "DrainLimitExceeded",
    "Drained",
    "NotRunnable",
    "advance",
    "assert_invoked",
    "assert_not_invoked",
    "drain",
    "eager",
    "invoked",
    "run_one",
    "worker_thread",
]


__getattr__, __dir__ = on_first_use(__name__, _HOMES, globals())
