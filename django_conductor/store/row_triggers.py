"""Database-row triggers: one PostgreSQL statement trigger per ``on_model`` subscription,
with a function of its own that inserts one execution per changed row (read from the
statement's transition tables) in the writer's transaction, and notifies the task's queue.
Names start with ``conductor_``, so that those no task asks for any more can be found and
dropped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

from .base import EXECUTION, READY_CHANNEL, Cursor, concurrency_key, execute, rows

PREFIX = "conductor_row_"

TRANSITIONS = {
    "insert": "REFERENCING NEW TABLE AS conductor_new",
    "update": "REFERENCING OLD TABLE AS conductor_old NEW TABLE AS conductor_new",
    "delete": "REFERENCING OLD TABLE AS conductor_old",
}


@dataclass(frozen=True)
class RowTrigger:
    """What one subscription installs."""

    task: str
    queue: str
    priority: int
    max_attempts: int
    #: ``app_label.model.operation``
    event: str
    operation: str
    #: The table as PostgreSQL names it (schema-qualified when the model's is), unquoted.
    schema: str | None
    table: str
    #: Database columns the payload keeps, and (for update) the ones whose change counts.
    columns: tuple[str, ...] | None
    #: A boolean SQL expression over ``NEW`` and ``OLD``, or None.
    when: str | None
    #: The primary key's column, which pairs old and new rows of an update.
    pk: str
    #: Its task's concurrency key spec (``Task.limit_key``).
    limit_key: str | None = None

    @property
    def name(self) -> str:
        """Stable while the subscription and its task's options stay the same, another
        name once any changes (so that it is installed anew); at most 63 bytes."""
        key = repr(
            (
                self.task,
                self.queue,
                self.priority,
                self.max_attempts,
                self.event,
                self.schema,
                self.table,
                self.columns,
                self.when,
                self.pk,
                self.limit_key,
            )
        )
        return PREFIX + self.operation + "_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _row_json(alias: str, columns: tuple[str, ...] | None) -> str:
    if columns is None:
        return f"to_jsonb({alias})"
    pairs = ", ".join(f"{literal(c)}, {alias}.{quote(c)}" for c in columns)
    return f"jsonb_build_object({pairs})"


def function_body(trigger: RowTrigger, execution_table: str) -> str:
    """The trigger function's SQL: one execution per row its statement changed."""
    new, old = '"new"', '"old"'
    conditions: list[str] = []
    if trigger.operation == "insert":
        source = f"conductor_new AS {new}"
        old_json, new_json = "NULL::jsonb", _row_json(new, trigger.columns)
    elif trigger.operation == "delete":
        source = f"conductor_old AS {old}"
        old_json, new_json = _row_json(old, trigger.columns), "NULL::jsonb"
    else:
        pk = quote(trigger.pk)
        source = f"conductor_new AS {new} JOIN conductor_old AS {old} ON {old}.{pk} = {new}.{pk}"
        old_json, new_json = _row_json(old, trigger.columns), _row_json(new, trigger.columns)
        watched = trigger.columns
        changed = (
            [f"{old}.{quote(c)} IS DISTINCT FROM {new}.{quote(c)}" for c in watched]
            if watched
            else [f"{old} IS DISTINCT FROM {new}"]
        )
        conditions.append("(" + " OR ".join(changed) + ")")
    if trigger.when:
        conditions.append(f"({trigger.when})")
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    payload = (
        f"jsonb_build_object('op', {literal(trigger.operation)}, 'table', "
        f"{literal(trigger.table)}, 'old', {old_json}, 'new', {new_json})"
    )
    spec = "NULL::text" if trigger.limit_key is None else f"{literal(trigger.limit_key)}::text"
    # NEW and OLD name the transition rows here: the trigger function's own NEW and OLD
    # variables (empty in a statement trigger) give way to them.
    return f"""
#variable_conflict use_column
DECLARE
    made bigint;
BEGIN
    INSERT INTO {execution_table} (task_name, queue, event_name, payload, priority, max_attempts,
                                   concurrency_key)
    SELECT {literal(trigger.task)}, {literal(trigger.queue)}, {literal(trigger.event)},
        changed.payload, {trigger.priority}, {trigger.max_attempts},
        {concurrency_key(spec, "changed.payload")}
    FROM (SELECT {payload} AS payload FROM {source} {where}) AS changed;
    GET DIAGNOSTICS made = ROW_COUNT;
    IF made > 0 THEN
        PERFORM pg_notify({literal(READY_CHANNEL)}, {literal(trigger.queue)});
    END IF;
    RETURN NULL;
END;
"""


def check_when(cursor: Cursor, trigger: RowTrigger) -> None:
    """Have PostgreSQL read the trigger's ``when`` on its table: a syntax error or an
    unknown column raises here, at install, rather than in the first write it would fail."""
    if trigger.when:
        table = _qualified(trigger.schema, trigger.table)
        execute(cursor, f'SELECT ({trigger.when}) FROM {table} AS "new", {table} AS "old" LIMIT 0')


def _qualified(schema: str | None, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}" if schema else quote(name)


def install(cursor: Cursor, trigger: RowTrigger, execution_table: str) -> None:
    """Create or replace the trigger and its function, in the caller's transaction."""
    function = _qualified(trigger.schema, trigger.name)
    body = function_body(trigger, execution_table)
    execute(
        cursor,
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
        f"$conductor$ {body} $conductor$",
    )
    execute(
        cursor,
        f"CREATE OR REPLACE TRIGGER {quote(trigger.name)} AFTER {trigger.operation.upper()} "
        f"ON {_qualified(trigger.schema, trigger.table)} "
        f"{TRANSITIONS[trigger.operation]} FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    )


#: Every conductor row trigger in the database, with its table.
INSTALLED = f"""
SELECT t.tgname, n.nspname, c.relname FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgname LIKE '{PREFIX}%%'
ORDER BY t.tgname
"""


class Installed(NamedTuple):
    name: str
    schema: str
    table: str


def installed(cursor: Cursor) -> list[Installed]:
    execute(cursor, INSTALLED)
    return rows(cursor, Installed)


def drop(cursor: Cursor, trigger: Installed) -> None:
    """Drop a trigger and its function."""
    table = _qualified(trigger.schema, trigger.table)
    execute(cursor, f"DROP TRIGGER IF EXISTS {quote(trigger.name)} ON {table}")
    execute(cursor, f"DROP FUNCTION IF EXISTS {_qualified(trigger.schema, trigger.name)}()")


#: Where the executions table is, so that a trigger that fires under another search_path
#: still finds it.
EXECUTION_SCHEMA = f"""
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass('{EXECUTION}')
"""


class Schema(NamedTuple):
    name: str


def execution_table(cursor: Cursor) -> str | None:
    """The executions table, schema-qualified; None before ``migrate`` made it."""
    execute(cursor, EXECUTION_SCHEMA)
    found = rows(cursor, Schema)
    return _qualified(found[0].name, EXECUTION) if found else None


#: The schema a table name resolves to under the current search_path, or nothing.
TABLE_SCHEMA = """
SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%s)
"""


def table_schema(cursor: Cursor, qualified_name: str) -> str | None:
    execute(cursor, TABLE_SCHEMA, [qualified_name])
    found = rows(cursor, Schema)
    return found[0].name if found else None
