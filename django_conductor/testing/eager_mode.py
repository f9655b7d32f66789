"""Eager mode: ``invoke`` and ``emit`` drain at once, in the caller's thread, what they
stored and whatever it starts, so that a unit test needs no worker. It is ``drain()`` run
for the caller, no more: what waits for time (a sleep, a backoff, a delayed run) waits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import eager_switch
from .draining import DEFAULT_LIMIT, drain, draining


@contextmanager
def eager(*, limit: int = DEFAULT_LIMIT) -> Iterator[None]:
    """Turn eager mode on in this thread for the block (or the decorated function); each
    ``invoke``/``emit`` then drains with this ``limit`` before it returns."""

    def run() -> None:
        if not draining():  # a handler's invoke: the drain running it takes the new work
            drain(limit=limit)

    token = eager_switch.runner.set(run)
    try:
        yield
    finally:
        eager_switch.runner.reset(token)
