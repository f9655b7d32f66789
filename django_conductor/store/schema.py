"""A project that has not run ``migrate`` yet hears so in one line, not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import psycopg
from django.db import ProgrammingError, connection

from ..exceptions import TablesMissing
from .base import FUNCTIONS, TABLES, execute, rows

MISSING_TABLES = "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL"
MISSING_FUNCTIONS = (
    "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regprocedure(name) IS NULL"
)


class Missing(NamedTuple):
    name: str


def _database() -> str:
    return connection.settings_dict.get("NAME") or "default"


def tables_missing(missing: list[str] | None = None) -> TablesMissing:
    which = f" ({', '.join(missing)})" if missing else ""
    return TablesMissing(
        f"django_conductor's tables do not exist in database {_database()!r}{which}: "
        "run `python manage.py migrate`."
    )


def check_tables() -> None:
    """Raise ``TablesMissing`` naming what is missing, tables first, then the functions a
    later migration created (the code is newer than the database); at a worker's start."""
    with connection.cursor() as cursor:
        execute(cursor, MISSING_TABLES, [list(TABLES)])
        missing = [table.name for table in rows(cursor, Missing)]
        if missing:
            raise tables_missing(missing)
        execute(cursor, MISSING_FUNCTIONS, [list(FUNCTIONS)])
        functions = [function.name.partition("(")[0] for function in rows(cursor, Missing)]
    if functions:
        raise TablesMissing(
            f"django_conductor's functions do not exist in database {_database()!r} "
            f"({', '.join(functions)}): its migrations are behind this version of the "
            "package; run `python manage.py migrate`."
        )


@contextmanager
def tables_required() -> Iterator[None]:
    """Turn "relation does not exist" for our tables into ``TablesMissing``."""
    try:
        yield
    except (ProgrammingError, psycopg.errors.UndefinedTable) as exc:
        cause = exc if isinstance(exc, psycopg.Error) else exc.__cause__
        if isinstance(cause, psycopg.errors.UndefinedTable) and any(
            table in str(cause) for table in TABLES
        ):
            raise tables_missing() from exc
        raise
