"""What each option may hold, said once: ``@task`` keeps the problems for the system checks
(a typo is reported at start-up, not at import), ``invoke`` raises them at once, and the
settings check and the worker command read the same rules. Each ``*_problem`` function
returns what is wrong, or None."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeGuard

from django.utils import timezone

from .windows import window_problem

QUEUE_LENGTH = 100
NAME_LENGTH = 200
DEDUPE_KEY_LENGTH = 200


def checked(problem: str | None) -> None:
    """Raise ``ValueError`` with ``problem``, if there is one."""
    if problem is not None:
        raise ValueError(problem)


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_duration(value: object) -> bool:
    """Seconds or a timedelta, none negative."""
    if isinstance(value, timedelta):
        return value >= timedelta(0)
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def is_positive(value: object, *, integer: bool = False) -> bool:
    """A positive integer, or (unless ``integer``) a positive number of seconds or timedelta."""
    if integer:
        return is_int(value) and value > 0
    if isinstance(value, timedelta):
        return value > timedelta(0)
    return is_duration(value) and value > 0  # type: ignore[operator]  # a number, by now


def _text_problem(option: str, value: object, longest: int, *, blank: bool = False) -> str | None:
    if isinstance(value, str) and value and (blank or value.strip()) and len(value) <= longest:
        return None
    return f"{option} must be a non-empty string of at most {longest} characters, not {value!r}"


def name_problem(value: object) -> str | None:
    return _text_problem("name", value, NAME_LENGTH)


def queue_problem(value: object) -> str | None:
    return _text_problem("queue", value, QUEUE_LENGTH)


def dedupe_key_problem(value: object) -> str | None:
    return _text_problem("dedupe_key", value, DEDUPE_KEY_LENGTH, blank=True)


def priority_problem(value: object) -> str | None:
    return None if is_int(value) else f"priority must be an integer, not {value!r}"


def max_attempts_problem(value: object) -> str | None:
    if is_int(value) and value >= 1:
        return None
    return f"max_attempts must be an integer of at least 1, not {value!r}"


def optional_count_problem(option: str, value: object) -> str | None:
    """``concurrency``: None, or an integer of at least 1."""
    if value is None or (is_int(value) and value >= 1):
        return None
    return f"{option} must be None or an integer of at least 1, not {value!r}"


#: The most events one batch may hold: a batch is read into one worker thread's memory.
MAX_BATCH = 10_000


def batch_problem(value: object) -> str | None:
    """``batch``: None, a size, or a size and the longest an event waits for a batch to fill
    (seconds or a timedelta)."""
    size, wait = value if isinstance(value, tuple) and len(value) == 2 else (value, 0)
    finite = is_duration(wait) and not (isinstance(wait, float) and math.isinf(wait))
    if value is None or (is_int(size) and 1 <= size <= MAX_BATCH and finite):
        return None
    return (
        f"batch must be None, a size from 1 to {MAX_BATCH:,}, or (size, longest wait) such as "
        f"(100, timedelta(seconds=1)), not {value!r}"
    )


def concurrency_key_problem(value: object) -> str | None:
    """A payload field, as a dotted path (``"customer.id"``), or None."""
    if value is None or (isinstance(value, str) and len(value) <= 200 and all(value.split("."))):
        return None
    return (
        "concurrency_key must be None or the name of a payload field (a dotted path such as "
        f"'customer.id' for a nested one), not {value!r}"
    )


def retry_delays_problem(value: object) -> str | None:
    if value is None or callable(value) or is_delay_list(value):
        return None
    return (
        "retry_delays must be a callable or a non-empty sequence of seconds or timedeltas, "
        f"none negative, not {value!r}"
    )


def is_delay_list(value: object) -> bool:
    """A non-empty sequence of seconds or timedeltas, none negative."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and bool(value)
        and all(is_duration(delay) for delay in value)
    )


def slot_problem(option: str, value: object) -> str | None:
    """``throttle`` and ``debounce``: a slot's length."""
    if value is None or is_positive(value):
        return None
    return f"{option} must be a positive number of seconds or a timedelta, not {value!r}"


def handler_problem(func: object) -> str | None:
    return None if callable(func) else f"the handler must be callable, not {func!r}"


def delay_problem(value: object) -> str | None:
    if value is None or (
        not isinstance(value, bool) and isinstance(value, int | float | timedelta)
    ):
        return None
    return f"delay must be seconds or a timedelta, not {value!r}"


def run_at_problem(run_at: object, delay: object) -> str | None:
    if run_at is not None and delay is not None:
        return "Pass run_at or delay, not both."
    if run_at is None:
        return None
    if not isinstance(run_at, datetime):
        return f"run_at must be a datetime, not {run_at!r}"
    if timezone.is_naive(run_at):
        return f"run_at must be timezone-aware, not the naive {run_at!r}"
    return None


def retention_problem(option: str, value: object) -> str | None:
    """``remove_on_complete`` and ``remove_on_fail``: True removes at the next pruning pass,
    a timedelta keeps the execution that long after it finished, False follows the project's
    ``CONDUCTOR_RETENTION``."""
    if isinstance(value, bool) or (isinstance(value, timedelta) and value > timedelta(0)):
        return None
    return f"{option} must be True, False or a positive timedelta, not {value!r}"


def keep_problem(value: object) -> str | None:
    """``CONDUCTOR_RETENTION``: a dict of statuses to seconds or timedeltas, or None."""
    if not isinstance(value, dict):
        return f"a dict such as {{'completed': timedelta(days=7)}}, not {value!r}"
    unknown = sorted(set(value) - set(RETAINED_STATUSES), key=repr)
    if unknown:
        return f"keyed by {', '.join(map(repr, RETAINED_STATUSES))}, not {unknown[0]!r}"
    for status, keep in value.items():
        if keep is not None and not is_duration(keep):
            return f"None or seconds or a timedelta, none negative, for {status!r}, not {keep!r}"
    return None


#: The statuses ``CONDUCTOR_RETENTION`` may give a duration for.
RETAINED_STATUSES = ("completed", "failed", "cancelled")

#: A task's options and their checks, for ``Task``.
TASK_OPTIONS: dict[str, Callable[[object], str | None]] = {
    "name": name_problem,
    "queue": queue_problem,
    "max_attempts": max_attempts_problem,
    "priority": priority_problem,
    "concurrency": lambda value: optional_count_problem("concurrency", value),
    "concurrency_key": concurrency_key_problem,
    "batch": batch_problem,
    "retry_delays": retry_delays_problem,
    "window": window_problem,
    "remove_on_complete": lambda value: retention_problem("remove_on_complete", value),
    "remove_on_fail": lambda value: retention_problem("remove_on_fail", value),
    "func": handler_problem,
}
