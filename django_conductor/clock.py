"""The database's clock, read once per claim and carried forward by the monotonic clock,
so that a worker compares recorded times (wake times, deadlines) with the same clock that
wrote them, and never with its own machine's."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DatabaseClock:
    #: ``now()`` as the database gave it, e.g. in the statement that claimed an execution.
    read_at: datetime
    #: ``time.monotonic()`` when that reading arrived.
    arrived: float = field(default_factory=time.monotonic)

    def now(self) -> datetime:
        return self.read_at + timedelta(seconds=time.monotonic() - self.arrived)
