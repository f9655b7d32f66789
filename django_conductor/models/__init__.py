"""The tables behind durable executions. Public: users query them with the ORM."""

from __future__ import annotations

# Offered here too, where users found them first.
from ..statuses import CLAIMABLE as CLAIMABLE
from ..statuses import FINISHED as FINISHED
from ..statuses import LIVE as LIVE
from ..statuses import ScheduleKind as ScheduleKind
from ..statuses import Status as Status
from .executions import Execution as Execution
from .executions import ExecutionManager as ExecutionManager
from .executions import ExecutionQuerySet as ExecutionQuerySet
from .limits import ConcurrencyLimit as ConcurrencyLimit
from .schedules import Schedule as Schedule
from .steps import FailedExecution as FailedExecution
from .steps import FailedExecutionQuerySet as FailedExecutionQuerySet
from .steps import Step as Step
from .steps import StepKind as StepKind
from .workers import WorkerHeartbeat as WorkerHeartbeat
