"""Group commit for the start of prefetched attempts that must be counted before their
handler is called: those of an execution claimed before (see ``attempt.run_attempt``).
Threads taking such claims at about the same time have theirs counted by one statement,
without contending for rows one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection

from .. import sql
from ..group_commit import GroupWriter, Request

if TYPE_CHECKING:
    from .attempt import Claimed


@dataclass(kw_only=True)
class StartRequest(Request):
    claimed: Claimed
    #: The claim with its attempt begun; None when the claim is no longer held.
    begun: Claimed | None = None


class AttemptStarter(GroupWriter[StartRequest]):
    what = "begin the attempt"

    def begin(self, claimed: Claimed) -> Claimed | None:
        """Block until ``claimed``'s attempt is counted; None when its lease has gone."""
        request = StartRequest(claimed=claimed)
        self.submit(request)
        return request.begun

    def _write(self, batch: list[StartRequest]) -> list[StartRequest]:
        connection.ensure_connection()
        params = sql.claim_pairs(request.claimed.key for request in batch)
        with sql.server_cursor(connection.connection) as cursor:
            cursor.execute(sql.START_ATTEMPTS, params, prepare=True)
            held = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
        locked = []
        for request in batch:
            attempts, cancel_requested = held.get(request.claimed.key, (None, None))
            if request.claimed.key in held and attempts is None:
                locked.append(request)
            elif attempts is not None:
                request.begun = request.claimed.begun(attempts, cancel_requested)
        return locked
