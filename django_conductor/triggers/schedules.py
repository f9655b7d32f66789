"""Keeping schedules and their next ticks. Static schedules follow the code when a worker
starts; ``schedule()`` makes dynamic ones. A tick's start creates the next tick (so a failing
run still schedules it), and each heartbeat creates it for any schedule whose tick passed
unstarted (cancelled, or no worker ran): missed ticks come to one run, never one per tick."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

from .. import payloads
from ..exceptions import PayloadError
from ..options import checked, name_problem
from ..registry import registry
from ..statuses import ScheduleKind
from ..store import schedules as store
from ..store.base import Cursor
from ..store.schema import tables_required
from .cron import Cron, expression_problem, next_tick, zone_name

if TYPE_CHECKING:
    from ..definition import Task

logger = logging.getLogger("django_conductor.worker")


def put(
    cursor: Cursor,
    task: Task,
    name: str,
    expression: str,
    tz: str | None,
    payload: str,
    kind: ScheduleKind,
) -> None:
    """Create or replace a schedule inside the caller's transaction; its next tick follows
    at once. An unchanged one is left as it is, its next tick too."""
    timezone = zone_name(tz)
    row = store.lock_or_create(
        cursor,
        task=task.name,
        name=name,
        expression=expression,
        timezone=timezone,
        payload=payload,
        kind=kind,
    )
    if row.kind != kind:
        where = "in code, by cron(...)" if row.kind == ScheduleKind.STATIC else "by schedule()"
        raise ValueError(
            f"Task {task.name!r} has a schedule named {name!r} made {where}: give this one "
            "another name."
        )
    same = (row.expression, row.timezone) == (expression, timezone) and payloads.loads(
        row.payload
    ) == payloads.loads(payload)
    if same and (row.paused or row.next_run_at is not None):
        return
    store.drop_future_ticks(cursor, task.name, name)
    next_run_at = None if row.paused else next_tick(expression, timezone, row.now)
    store.update(
        cursor,
        row.id,
        expression=expression,
        timezone=timezone,
        payload=payload,
        paused=row.paused,
        next_run_at=next_run_at,
    )
    if next_run_at is not None:
        store.insert_tick(cursor, tick_of(task, name, payload), next_run_at)


def tick_of(task: Task, name: str, payload: str | None) -> store.Tick:
    return store.Tick(
        task.name, name, task.queue, payload, task.priority, task.max_attempts, task.limit_key
    )


def advance(cursor: Cursor, due: Iterable[store.ScheduleRow]) -> int:
    """Give each due schedule its next tick after now; returns how many were advanced. One
    whose stored expression or zone no longer parses (tzdata or cronsim changed under it)
    is paused, saying why, rather than stopping the heartbeat that advances the others."""
    advanced = 0
    for row in due:
        task = registry.tasks.get(row.task_name)
        if task is None:
            continue
        problem = expression_problem(row.expression, row.timezone)
        if problem is not None:
            logger.error(
                "Cron schedule %r of task %r is paused: %s. Schedule it again (or fix its "
                "cron() trigger) and resume it.",
                row.name,
                row.task_name,
                problem,
                extra={"action": "schedule_paused", "task": row.task_name},
            )
            _set(cursor, row, paused=True, next_run_at=None)
            continue
        next_run_at = next_tick(row.expression, row.timezone, row.now)
        store.insert_tick(cursor, tick_of(task, row.name, row.payload), next_run_at)
        store.advance(cursor, row.id, next_run_at)
        advanced += 1
    return advanced


def advance_due(cursor: Cursor, tasks: list[str]) -> int:
    """The heartbeat's part: every due schedule of these tasks, in the caller's transaction."""
    return advance(cursor, store.due(cursor, tasks))


def advance_one(cursor: Cursor, task: str, name: str) -> int:
    """A tick's start: its schedule, if its next tick is still this one (or earlier)."""
    return advance(cursor, store.due_one(cursor, task, name))


def defer_one(cursor: Cursor, task_name: str, name: str, opening: datetime | None) -> None:
    """A tick of a windowed task waits for the window's ``opening`` in place of the ticks
    until then: its schedule's next tick is the first after the opening, so ticks due while
    the window is closed come to one run. Asked again, it changes nothing more."""
    row = store.lock_named(cursor, task_name, name)
    task = registry.tasks.get(task_name)
    if row is None or task is None or opening is None or row.paused:
        return
    if row.next_run_at is None or row.next_run_at > opening:
        return
    if expression_problem(row.expression, row.timezone) is not None:
        return  # the heartbeat pauses it, saying why
    store.drop_future_ticks(cursor, task_name, name)
    next_run_at = next_tick(row.expression, row.timezone, opening)
    _set(cursor, row, paused=False, next_run_at=next_run_at)
    store.insert_tick(cursor, tick_of(task, name, row.payload), next_run_at)


def sync_static(cursor: Cursor, tasks: Iterable[Task]) -> list[str]:
    """Make the stored static schedules of these tasks those their code defines, in the
    caller's transaction: new ones start, changed ones are replaced, removed ones go, each
    with its future tick; dynamic schedules are left alone. Returns what was refused."""
    tasks = list(tasks)
    keep: list[tuple[str, str]] = []
    refused: list[str] = []
    for task in tasks:
        for trigger in task.triggers:
            if not isinstance(trigger, Cron) or trigger.problem() is not None:
                continue  # the system checks report a bad one
            keep.append((task.name, trigger.name))
            try:
                with transaction.atomic():  # a savepoint: one refusal spoils nothing else
                    put(
                        cursor,
                        task,
                        trigger.name,
                        trigger.expression,
                        trigger.tz,
                        payloads.dumps(trigger.payload),
                        ScheduleKind.STATIC,
                    )
            except ValueError as exc:
                refused.append(str(exc))
    for gone in store.delete_stale_static(cursor, [task.name for task in tasks], keep):
        store.drop_future_ticks(cursor, gone.task_name, gone.name)
    return refused


@tables_required()
def schedule(
    task: Task | str, schedule_name: str, cron: str, payload: Any = None, *, tz: str | None = None
) -> None:
    """Run ``task`` on ``cron``'s ticks from now on, with ``schedule_name`` as the event name
    and ``payload`` delivered to every tick, in the caller's transaction. The same name
    replaces the schedule (a changed one gets a fresh next tick). Raises ``ValueError`` for a
    bad expression, name or time zone, and ``PayloadError`` for a payload that is not JSON;
    nothing is stored then."""
    target = registry.get(task) if isinstance(task, str) else task
    checked(_named(schedule_name))
    checked(expression_problem(cron, tz))
    text = payloads.dumps_or(
        payload,
        lambda why: PayloadError(f"The payload for schedule {schedule_name!r} is not JSON: {why}"),
        root="payload",
    )
    with transaction.atomic(), connection.cursor() as cursor:
        put(cursor, target, schedule_name, cron, tz, text, ScheduleKind.DYNAMIC)


@tables_required()
def unschedule(task: Task | str, schedule_name: str) -> bool:
    """Remove a dynamic schedule and its future tick; False when there was none. A tick
    already under way runs on. A schedule defined in code is removed from the code."""
    task_name = registry.get(task).name if isinstance(task, str) else task.name
    with transaction.atomic(), connection.cursor() as cursor:
        removed = store.delete(cursor, task_name, schedule_name, ScheduleKind.DYNAMIC)
        if removed:
            store.drop_future_ticks(cursor, task_name, schedule_name)
    return removed


@tables_required()
def pause(schedule_id: int) -> bool:
    """Stop a schedule's ticks, its future tick with them; False when it was paused."""
    with transaction.atomic(), connection.cursor() as cursor:
        row = store.lock(cursor, schedule_id)
        if row is None or row.paused:
            return False
        store.drop_future_ticks(cursor, row.task_name, row.name)
        _set(cursor, row, paused=True, next_run_at=None)
    return True


@tables_required()
def resume(schedule_id: int) -> bool:
    """Tick again from now: the next tick after now, not the ones missed while paused.
    Raises ``ValueError`` when its expression or zone no longer parses."""
    with transaction.atomic(), connection.cursor() as cursor:
        row = store.lock(cursor, schedule_id)
        if row is None or not row.paused:
            return False
        checked(expression_problem(row.expression, row.timezone))
        next_run_at = next_tick(row.expression, row.timezone, row.now)
        _set(cursor, row, paused=False, next_run_at=next_run_at)
        store.insert_tick(cursor, _tick(row), next_run_at)
    return True


@tables_required()
def run_now(schedule_id: int) -> int | None:
    """One execution of the schedule now, its tick the database's now, besides its ticks;
    the new execution's id, or None when the schedule is gone."""
    with transaction.atomic(), connection.cursor() as cursor:
        row = store.lock(cursor, schedule_id)
        return None if row is None else store.insert_tick(cursor, _tick(row), row.now)


def _tick(row: store.ScheduleRow) -> store.Tick:
    return tick_of(registry.get(row.task_name), row.name, row.payload)


def _set(cursor: Cursor, row: store.ScheduleRow, *, paused: bool, next_run_at: Any) -> None:
    store.update(
        cursor,
        row.id,
        expression=row.expression,
        timezone=row.timezone,
        payload=row.payload or "null",
        paused=paused,
        next_run_at=next_run_at,
    )


def _named(name: object) -> str | None:
    problem = name_problem(name)
    return None if problem is None else f"schedule_{problem}"
