"""Where the LISTEN connections of workers and ``ExecutionHandle.wait()`` go:
``CONDUCTOR_LISTEN_DATABASE``, else the default database. A pooler that hands the server
connection to another client after each transaction (PgBouncer's transaction mode) drops a
LISTEN with it, so behind one they need a direct connection to PostgreSQL."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend

from .conf import settings

#: The ``DATABASES`` keys a dict may give; each replaces the default database's own.
KEYS = frozenset({"NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS"})

WANTED = (
    "None, the alias of a PostgreSQL database in DATABASES, or a dict of DATABASES keys "
    f"({', '.join(sorted(KEYS))}) to use instead of the default database's"
)


def connection_params(alias: str = DEFAULT_DB_ALIAS) -> dict[str, Any]:
    """psycopg's ``connect()`` arguments for a LISTEN connection to ``alias``'s database."""
    base = connections[alias]
    value = settings.LISTEN_DATABASE
    if isinstance(value, str):
        wrapper = connections[value]
    elif isinstance(value, dict):
        # Keys left out follow the default database, its test database's NAME included.
        wrapper = type(base)({**base.settings_dict, **value}, alias)
    else:
        wrapper = base
    params: dict[str, Any] = wrapper.get_connection_params()
    params.pop("cursor_factory", None)
    return params


def problem(value: object) -> str | None:
    """What is wrong with a ``CONDUCTOR_LISTEN_DATABASE`` value, or None."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in connections.settings:
            return f"{WANTED}; DATABASES has no {value!r}"
        engine = connections.settings[value].get("ENGINE", "")
        try:
            vendor = load_backend(engine).DatabaseWrapper.vendor
        except ImproperlyConfigured:
            vendor = None  # an ENGINE that does not load: not PostgreSQL either
        if vendor != "postgresql":
            return f"{WANTED}; DATABASES[{value!r}] is not PostgreSQL ({engine!r})"
        return None
    if not isinstance(value, dict):
        return f"{WANTED}, not {value!r}"
    unknown = sorted(map(str, set(value) - KEYS))
    if unknown:
        return f"{WANTED}; it has unknown keys {', '.join(unknown)}"
    for key, given in value.items():
        if key == "OPTIONS":
            if not isinstance(given, dict):
                return f"{WANTED}; its OPTIONS must be a dict, not {given!r}"
        elif key == "PORT":
            if isinstance(given, bool) or not isinstance(given, int | str):
                return f"{WANTED}; its PORT must be a number or a string, not {given!r}"
        elif not isinstance(given, str):
            return f"{WANTED}; its {key} must be a string, not {given!r}"
    return None
