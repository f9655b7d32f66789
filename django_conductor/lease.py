"""How long this process may still act on a claim, by its own clock.

A lease is counted from the moment the worker *sent* the statement that claimed or renewed
it, so the worker's view always ends before the database's. A process frozen past its lease
(SIGSTOP, swapping, a paused VM) thus learns on waking that it holds nothing, before it
starts another step, and leaves the execution to the worker that took it over."""

from __future__ import annotations

import time

#: A clock that keeps counting while the process or the machine is frozen or suspended.
_CLOCK = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def elapsed() -> float:
    """Seconds on that clock; only differences mean anything."""
    return time.clock_gettime(_CLOCK)


class Lease:
    def __init__(self, sent_at: float, seconds: float) -> None:
        self.expires = sent_at + seconds

    def renewed(self, sent_at: float, seconds: float) -> None:
        self.expires = max(self.expires, sent_at + seconds)

    @property
    def held(self) -> bool:
        return elapsed() < self.expires
