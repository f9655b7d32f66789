"""Django signals a worker sends about the attempts it runs, in the thread that runs each one.
Nothing is built for them while no receiver is connected; a receiver that raises is logged
and changes nothing about the attempt (``send_robust``). Not ``worker.signals``, which
handles the process's OS signals."""

from __future__ import annotations

from django.dispatch import Signal

#: An attempt begins, before the handler runs. ``sender`` is the ``Task``; keyword
#: arguments: ``execution_id``, ``task_name``, ``queue``, ``attempt`` (its number, from 1),
#: ``event`` (what the handler receives) and ``batch`` (the number of executions claimed
#: together for a batch handler; 1 otherwise).
execution_started = Signal()

#: An attempt ended, before its outcome is written (the worker writes outcomes together).
#: Those of ``execution_started``, and ``status`` (what the execution becomes: "completed",
#: "failed", "pending" for a retry or a hand-back, "sleeping", "waiting", "cancelled"; None
#: when another worker took the execution over), ``outcome`` (finer: "completed", "failed",
#: "retrying", "handed_back", "sleeping", "waiting", "cancelled", "lost"), ``duration``
#: (seconds, by the monotonic clock) and ``error`` (the error text, or None).
execution_finished = Signal()

#: A ``ctx.step`` ran its function, its result recorded (or its exception put on record);
#: not sent for a step a replay returns from the record. ``sender`` is the ``Task``;
#: keyword arguments: ``execution_id``, ``task_name``, ``attempt``, ``name`` (the step's),
#: ``duration`` (seconds), ``raised`` (whether it raised) and ``error`` (the exception, or
#: None).
step_finished = Signal()

SIGNALS = (execution_started, execution_finished, step_finished)


def listened() -> bool:
    """Whether any receiver is connected to one of them: one list check each, so that an
    attempt nobody watches pays nothing more."""
    return bool(execution_started.receivers or execution_finished.receivers) or bool(
        step_finished.receivers
    )
