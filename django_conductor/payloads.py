"""Strict JSON in and out: what is stored is exactly what a replay gets back. A value that
JSON cannot hold, or that PostgreSQL cannot store (a NUL character, a lone surrogate), is
refused with where it is and what to pass instead."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

#: What a batch writer gets when PostgreSQL, or psycopg on its way there, refuses a value:
#: text with a NUL, a lone surrogate, a character the database's encoding lacks, a value
#: too large. The value is bad, not the database: only its own record fails.
UNSTORABLE = (psycopg.DataError, psycopg.errors.ProgramLimitExceeded, UnicodeError)

#: The escapes jsonb refuses in every encoding: NUL, and a lone surrogate. ``json.dumps``
#: writes every non-ASCII character as a lower-case ``\uXXXX`` escape, a character beyond
#: U+FFFF as a high surrogate followed by a low one; anything else is a lone surrogate.
_BAD_ESCAPE = re.compile(
    r"\\u(?:0000|d(?:[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2}\\ud)[c-f]))"
)


#: One encoder for every value: ``json.dumps`` with options builds a new one each call.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Serialise strictly: no NaN, no objects JSON cannot hold, no text that PostgreSQL's
    jsonb cannot hold (raises TypeError/ValueError)."""
    text = _ENCODER.encode(value)
    if jsonb_cannot_hold(text) and _unstorable(value, "the value", set()) is not None:
        raise ValueError("the value holds text that PostgreSQL cannot store")
    return text


def jsonb_cannot_hold(text: str) -> bool:
    """Whether JSON text from ``dumps`` may hold what jsonb refuses in every encoding: the
    escape of NUL, or of a lone surrogate. For text without escapes it costs a memchr (a
    one-character search); an escaped backslash can make it answer True for text that is
    fine, never False for text that is bad."""
    return "\\" in text and "\\u" in text and _BAD_ESCAPE.search(text) is not None


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL's text type can hold it, for error messages and tracebacks:
    a NUL becomes ``\\x00`` and a surrogate its ``\\udXXX`` escape."""
    if "\x00" not in text:
        if text.isascii():
            return text
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def ascii_text(text: str) -> str:
    """``text`` with everything outside ASCII escaped: storable whatever the database's
    encoding, for the last resort when PostgreSQL refused the text itself."""
    return text.replace("\x00", "\\x00").encode("ascii", "backslashreplace").decode("ascii")


def first_line(exc: BaseException) -> str:
    """The first line of a database error, without psycopg's context and parameters."""
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


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
    text = bad.key if isinstance(bad, _Key) else bad
    holder = "PostgreSQL cannot store" if isinstance(text, str) else "JSON cannot hold"
    return f"{where} is {_kind(bad)}, which {holder}: {_remedy(bad)}."


class _Cycle:
    """Stands for a container met again inside itself."""


class _Key:
    """Stands for a dict key that JSON cannot hold."""

    def __init__(self, key: Any) -> None:
        self.key = key


def _storable_str(text: str) -> bool:
    """No NUL, and no surrogate but those that pair up (as ``json.dumps`` writes them)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:
            return False
    return True


def _unstorable(value: Any, where: str, seen: set[int]) -> tuple[str, Any] | None:
    """The first place in ``value`` that JSON cannot hold or PostgreSQL cannot store, and
    what is there."""
    if isinstance(value, str):
        return None if value.isascii() and "\x00" not in value else _bad_text(value, where)
    if value is None or isinstance(value, bool | int):
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
            if isinstance(key, str) and _bad_text(key, where) is not None:
                return f"the key {key!r} of {where}", _Key(key)
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


def _bad_text(text: str, where: str) -> tuple[str, str] | None:
    return None if _storable_str(text) else (where, text)


def _kind(value: Any) -> str:
    if isinstance(value, _Cycle):
        return "a list or dict that contains itself"
    text = value.key if isinstance(value, _Key) else value
    if isinstance(text, str):
        return f"a string holding {_flaw(text)}"
    if isinstance(value, _Key):
        return f"{value.key!r}"
    if isinstance(value, float):
        return f"the float {value!r}"
    kind = type(value)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    return f"of type {module}{kind.__qualname__}"


def _flaw(text: str) -> str:
    if "\x00" in text:
        return "a NUL character ('\\x00')"
    return "a lone surrogate (half of a UTF-16 pair, e.g. from errors='surrogateescape')"


def _remedy(value: Any) -> str:
    if isinstance(value, _Cycle):
        return "remove the reference cycle"
    text = value.key if isinstance(value, _Key) else value
    if isinstance(text, str):
        if "\x00" in text:
            return "remove it, e.g. value.replace('\\x00', ''), or pass binary data as base64"
        return "pass valid text, e.g. value.encode('utf-8', 'replace').decode(), or base64"
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
