"""The admin: every execution and failure, read-only, with retry, cancel and run-now for
those who may change executions, and an overview of the whole system.

Nobody adds or edits executions or steps by hand: their state belongs to the workers. The
modules: ``executions`` and ``failures`` (the two registered admins), ``execution_fields``
(the executions' columns and fields), ``base`` (read-only, with operations), ``operations``
(retry, cancel, run-now), ``changelist`` (filters, search, uncounted lists), ``views`` (an
execution's own pages), ``display`` (badges, times, JSON), ``overview`` and ``timeline``."""

from .executions import ExecutionAdmin
from .failures import FailedExecutionAdmin

__all__ = ["ExecutionAdmin", "FailedExecutionAdmin"]
