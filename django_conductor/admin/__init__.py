"""The admin: every execution and failure, read-only, with retry, cancel and run-now for
those who may change executions; the cron schedules, with pause, resume and run-now; and an
overview of the whole system.

Nobody adds or edits executions or steps by hand: their state belongs to the workers. The
modules: ``executions``, ``failures`` and ``schedules`` (the registered admins),
``execution_fields`` (the executions' columns and fields), ``base`` (read-only, with
operations), ``operations`` (retry, cancel, run-now), ``changelist`` (filters, search,
uncounted lists), ``views`` (an execution's own pages), ``display`` (badges, times, JSON),
``overview`` and ``timeline``."""

from .executions import ExecutionAdmin
from .failures import FailedExecutionAdmin
from .schedules import ScheduleAdmin

__all__ = ["ExecutionAdmin", "FailedExecutionAdmin", "ScheduleAdmin"]
