"""Strict JSON in and out: what is stored is exactly what a replay gets back."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> str:
    """Serialise strictly: no NaN, no objects JSON cannot hold (raises TypeError/ValueError)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def describe(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__
