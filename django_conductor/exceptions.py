"""Errors raised by django_conductor. Each docstring is the default message."""

from __future__ import annotations

from datetime import UTC, datetime


class ConductorError(Exception):
    """django_conductor error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class UnknownTask(ConductorError, LookupError):
    """No task is registered under that name."""


class PayloadError(ConductorError, TypeError):
    """The payload cannot be stored as JSON."""


class NonRetryableError(ConductorError):
    """Raised by a handler to fail its execution at once, with no further attempts."""


class DuplicateStepName(ConductorError):
    """A step name was used twice in one run of a handler."""


class StepResultError(ConductorError, TypeError):
    """A step returned a value that cannot be stored as JSON."""


class ExecutionFailed(ConductorError):
    """The execution failed for good."""


class ExecutionCancelled(ConductorError):
    """The execution was cancelled."""


class ChildExecutionFailed(ExecutionFailed):
    """A child execution failed for good."""


class ChildExecutionTimeout(ConductorError, TimeoutError):
    """A child execution did not finish in time and was cancelled."""


class EventTimeout(ConductorError, TimeoutError):
    """``ctx.wait_for_event`` reached its timeout before the event came; recorded, so that
    every replay raises it too."""


class TransactionNotAllowed(ConductorError):
    """A ctx call was made inside a transaction; durable records commit on their own."""


class TablesMissing(ConductorError):
    """django_conductor's tables do not exist yet: run ``python manage.py migrate``."""


class WorkerFailed(ConductorError):
    """One of the worker's duties died of an unexpected error; the worker stopped."""


def error_text(exc: BaseException) -> str:
    """How an error is stored and shown: our own errors by their message, others with
    their type in front (``ValueError: card declined``)."""
    message = str(exc).strip()
    if isinstance(exc, ConductorError):
        return message or type(exc).__name__
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


#: How a child's error starts when its parent stopped waiting for it.
TIMEOUT_REASON = "Timed out: the parent stopped waiting"


def child_error(
    step_name: str, error: str, deadline: datetime | None, *, among: bool = False
) -> ChildExecutionFailed | ChildExecutionTimeout:
    """What an invoke step that finished with ``error`` raises: the same on its first run,
    on every replay, and as ``retry`` compares it with the parent's error. A child
    ``among`` others (``ctx.invoke_all``) is named."""
    if error.startswith(TIMEOUT_REASON):
        by = deadline.astimezone(UTC).isoformat(timespec="seconds") if deadline else "its deadline"
        return ChildExecutionTimeout(
            f"Child {step_name!r} did not finish by {by}; it was cancelled."
        )
    named = f" (child {step_name!r})" if among else ""
    return ChildExecutionFailed(f"Child execution failed: {error}{named}")
