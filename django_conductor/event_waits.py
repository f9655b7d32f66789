"""``ctx.wait_for_event``: park, holding no worker, until an ``emit`` whose payload has the
values of ``match``; then return that payload. Each write is fenced on the claim, so a
worker that lost its lease records nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from . import payloads
from .children import Owner, record_timeout
from .exceptions import EventTimeout, PayloadError
from .options import checked, name_problem
from .replay import LeaseLost, Park
from .statuses import Status
from .store.base import server_cursor
from .store.waits import start_wait

#: What a wait that timed out has on record as its error.
EVENT_TIMEOUT = "Timed out waiting for the event"


def match_text(event_name: str, match: Any) -> str | None:
    """``match`` as JSON; it must be a dict of top-level payload values, or None."""
    checked(name_problem(event_name))
    if match is None:
        return None
    if not isinstance(match, dict):
        raise ValueError(f"match must be a dict of top-level payload values, not {match!r}")
    return payloads.dumps_or(
        match,
        lambda why: PayloadError(f"The match for event {event_name!r} is not JSON: {why}"),
        root="match",
    )


def start(owner: Owner, event_name: str, match: str | None, timeout: float | None) -> NoReturn:
    """Record the wait and park until the event, or the deadline."""
    with server_cursor(owner.conn) as cursor:
        started = start_wait(
            cursor,
            execution_id=owner.execution_id,
            claims=owner.claims,
            step_name=owner.step_name,
            event=event_name,
            match=match,
            timeout=timeout,
        )
    if started is None:
        raise LeaseLost(owner.step_name)
    if not started.recorded:  # on record already, from this claim: replay reads it
        raise Park(Status.PENDING, run_in=0.0)
    raise Park(Status.WAITING, started.deadline)


def time_out(owner: Owner, deadline: datetime) -> NoReturn:
    """Record the timeout as the wait's outcome; an event that came first wins."""
    if not record_timeout(owner, EVENT_TIMEOUT):
        raise Park(Status.PENDING, run_in=0.0)  # the event came first: replay with it
    raise timeout_error(owner.step_name, deadline)


def timeout_error(step_name: str, deadline: datetime | None) -> EventTimeout:
    """The same on the first run, on every replay, and as ``retry`` compares it."""
    by = deadline.astimezone(UTC).isoformat(timespec="seconds") if deadline else "its deadline"
    return EventTimeout(f"No event came for wait {step_name!r} by {by}.")
