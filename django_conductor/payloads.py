"""Strict JSON in and out: what is stored is exactly what a replay gets back."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def dumps(value: Any) -> str:
    """Serialise strictly: no NaN, no objects JSON cannot hold (raises TypeError/ValueError)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def dumps_or(value: Any, error: Callable[[str], Exception]) -> str:
    """``dumps``, turning a value JSON cannot hold into ``error(reason)``."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise error(str(exc)) from None


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def describe(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__
