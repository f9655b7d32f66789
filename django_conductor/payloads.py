"""Strict JSON in and out: what is stored is exactly what a replay gets back. A value that
JSON cannot hold is refused with where it is and what to pass instead."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID


def dumps(value: Any) -> str:
    """Serialise strictly: no NaN, no objects JSON cannot hold (raises TypeError/ValueError)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def dumps_or(value: Any, error: Callable[[str], Exception], *, root: str = "the value") -> str:
    """``dumps``, turning a value JSON cannot hold into ``error(explanation)``; ``root``
    names the value in the explanation (``payload``, ``the result``)."""
    try:
        return dumps(value)
    except (TypeError, ValueError) as exc:
        raise error(explain(value, exc, root)) from None


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def explain(value: Any, exc: Exception, root: str) -> str:
    """What JSON refused, where, and what to pass instead."""
    found = _unstorable(value, root, set())
    if found is None:  # e.g. nesting too deep: JSON's own words are the best we have
        return f"{exc}. Pass only str, int, float, bool, None, lists and dicts."
    where, bad = found
    return f"{where} is {_kind(bad)}, which JSON cannot hold: {_remedy(bad)}."


class _Cycle:
    """Stands for a container met again inside itself."""


class _Key:
    """Stands for a dict key that JSON cannot hold."""

    def __init__(self, key: Any) -> None:
        self.key = key


def _unstorable(value: Any, where: str, seen: set[int]) -> tuple[str, Any] | None:
    """The first place in ``value`` that JSON cannot hold, and what is there."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if not isinstance(value, dict | list | tuple):
        return where, value
    if id(value) in seen:
        return where, _Cycle()
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            if key is not None and not isinstance(key, str | int | float | bool):
                return f"a key of {where}", _Key(key)
            found = _unstorable(item, f"{where}[{key!r}]", seen)
            if found is not None:
                return found
    else:
        for index, item in enumerate(value):
            found = _unstorable(item, f"{where}[{index}]", seen)
            if found is not None:
                return found
    seen.discard(id(value))
    return None


def _kind(value: Any) -> str:
    if isinstance(value, _Cycle):
        return "a list or dict that contains itself"
    if isinstance(value, _Key):
        return f"{value.key!r}"
    if isinstance(value, float):
        return f"the float {value!r}"
    kind = type(value)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    return f"of type {module}{kind.__qualname__}"


def _remedy(value: Any) -> str:
    if isinstance(value, _Cycle):
        return "remove the reference cycle"
    if isinstance(value, _Key):
        return "use str keys"
    if isinstance(value, float):
        return "pass None or a string instead"
    if isinstance(value, Decimal):
        return "pass str(value) (exact) or float(value), and convert back where it is used"
    if isinstance(value, datetime | date | time):
        return "pass value.isoformat(), and read it back with fromisoformat()"
    if isinstance(value, timedelta):
        return "pass value.total_seconds()"
    if isinstance(value, UUID):
        return "pass str(value)"
    if isinstance(value, set | frozenset):
        return "pass a list, e.g. sorted(value)"
    if isinstance(value, bytes | bytearray):
        return "pass text, e.g. value.decode() or base64"
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return "pass its id (obj.pk) and load the row where it is used, so the latest data is read"
    if hasattr(value, "model") and hasattr(value, "values_list"):
        return "pass a list of ids, e.g. list(queryset.values_list('pk', flat=True))"
    return "pass only str, int, float, bool, None, lists and dicts (ids rather than objects)"
