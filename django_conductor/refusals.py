"""Writing a batch around a value PostgreSQL refuses (a NUL character, a lone surrogate, a
character the database's encoding lacks): the batch is split in halves, each written on
its own, until the one record that holds the value is alone; only that one fails. A data
error never counts as a lost database, and never holds back the rest of the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .payloads import UNSTORABLE

T = TypeVar("T")
R = TypeVar("R")


def write_around_refusals(
    batch: list[T],
    write: Callable[[list[T]], R],
    alone: Callable[[T, BaseException], R],
    merge: Callable[[R, R], R],
) -> R:
    """``write(batch)``; when PostgreSQL refuses a value, the halves are written apart and
    their results merged, down to the refused record, which ``alone`` deals with."""
    try:
        return write(batch)
    except UNSTORABLE as exc:
        if len(batch) == 1:
            return alone(batch[0], exc)
        half = len(batch) // 2
        first = write_around_refusals(batch[:half], write, alone, merge)
        return merge(first, write_around_refusals(batch[half:], write, alone, merge))
