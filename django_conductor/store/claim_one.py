"""Claiming one named execution, with the very update that claims a batch: for the test
helpers' ``run_one``, which runs a chosen execution rather than the next in line."""

from __future__ import annotations

from typing import Any

import psycopg

from .base import CLAIMABLE, EXECUTION, execute, one
from .claims import _TAKE, ClaimRow

CLAIM_ONE = f"""
WITH picked AS (
    SELECT id, 1 AS place FROM {EXECUTION}
    WHERE id = %(id)s AND status IN {CLAIMABLE} AND run_at <= now()
    FOR UPDATE SKIP LOCKED
), {_TAKE}"""


def claim_one(
    cursor: psycopg.Cursor[Any], execution_id: int, *, worker: str, lease: float
) -> ClaimRow | None:
    """Claim the execution if it is ready and no one holds it; its attempt starts now."""
    params = {"id": execution_id, "start": 1, "worker": worker, "lease": lease}
    execute(cursor, CLAIM_ONE, params)
    return one(cursor, ClaimRow)
