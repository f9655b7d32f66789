"""Typed settings, read live from ``django.conf.settings`` with documented defaults."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings as django_settings

PREFIX = "CONDUCTOR_"


def seconds(value: float | timedelta) -> float:
    """Accept a number of seconds or a timedelta."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


class Settings:
    """``CONDUCTOR_*`` settings. Durations accept seconds or a ``timedelta``."""

    #: Worker threads per ``conductor_worker`` process.
    CONCURRENCY: int = 10
    #: The most executions a worker claims ahead of its free threads. It adapts below this:
    #: further ahead while short executions drain every batch, less once claimed ones wait
    #: for a thread. 0 claims only what free threads can start now.
    PREFETCH: int = 100
    #: How long a claimed execution stays owned without a heartbeat (seconds).
    LEASE: float = 30.0
    #: How often a worker renews its leases and its heartbeat row (seconds).
    HEARTBEAT_INTERVAL: float = 5.0
    #: How often an idle worker polls when no notification arrives (seconds).
    POLL_INTERVAL: float = 5.0
    #: How long running executions may finish after SIGTERM/SIGINT (seconds).
    SHUTDOWN_GRACE: float = 30.0
    #: Default delays before attempts 2, 3, 4, 5+ (seconds).
    RETRY_DELAYS: tuple[float, ...] = (15.0, 30.0, 60.0, 60.0)

    #: How long finished executions are kept, per status, before pruning removes them
    #: (seconds or a timedelta; None keeps them for ever). A status left out keeps its
    #: default; ``cancelled`` follows ``failed`` unless given.
    RETENTION: dict[str, float | timedelta | None] = {  # noqa: RUF012 (read, never changed)
        "completed": 7 * 24 * 3600.0,
        "failed": 30 * 24 * 3600.0,
    }
    #: How often a worker prunes finished executions past their retention (seconds); None
    #: leaves pruning to ``manage.py conductor_prune``.
    PRUNE_INTERVAL: float | None = 60.0

    #: Where the LISTEN connections of workers and ``wait()`` go, when not where the default
    #: database is (behind a transaction pooler): a ``DATABASES`` alias, or a dict of
    #: ``DATABASES`` keys that replace the default database's.
    LISTEN_DATABASE: str | dict[str, object] | None = None

    DURATIONS = ("LEASE", "HEARTBEAT_INTERVAL", "POLL_INTERVAL", "SHUTDOWN_GRACE")

    def __getattribute__(self, name: str):  # type: ignore[no-untyped-def]
        if name.isupper() and name != "DURATIONS":
            default = super().__getattribute__(name)
            value = getattr(django_settings, PREFIX + name, default)
            if name in type(self).DURATIONS or (name == "PRUNE_INTERVAL" and value is not None):
                return seconds(value)
            return value
        return super().__getattribute__(name)


settings = Settings()
