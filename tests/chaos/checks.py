"""What the suite checks once every execution has settled, from the ledger, the lease log and
django_conductor's own tables. Each violation carries its evidence: execution, step, the
workers and claims involved, and the times (seconds from the start of the run)."""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import faults
from .ledger import LEASE_LOG, LEDGER
from .tasks import expected_result, step_value

COMMITTED_RERUN = "committed step ran again"
NO_LEASE = "step started without a valid lease"
SHARED_CLAIM = "one claim run by two processes"
CLAIM_FROM_LIVE = "claimed while another claim held the lease"
TWO_UNRECORDED = "a run left more than one step unrecorded"
SIGTERM_RERUN = "SIGTERM within the grace re-ran a step"
UNEXPLAINED_RERUN = "re-run with no fault to explain it"
NOT_COMPLETED = "not completed"
STRANDED = "left pending, running, sleeping or waiting"
WRONG_RESULT = "wrong result"
COMPLETED_TWICE = "completed more than once"
UNRECORDED_EFFECT = "recorded step without its side effect"
EXIT_CODE = "worker exit code"
UNKNOWN_CLAIM = "run's claim number not visible to the suite"

#: The order of the violation table.
VIOLATION_KINDS = (
    COMMITTED_RERUN,
    NO_LEASE,
    SHARED_CLAIM,
    CLAIM_FROM_LIVE,
    TWO_UNRECORDED,
    SIGTERM_RERUN,
    UNEXPLAINED_RERUN,
    NOT_COMPLETED,
    STRANDED,
    WRONG_RESULT,
    COMPLETED_TWICE,
    UNRECORDED_EFFECT,
    EXIT_CODE,
    UNKNOWN_CLAIM,
)
#: Faults after which DESIGN.md allows the step in flight to run again, most telling first.
ALLOWED_CAUSES = (
    faults.SIGKILL,
    faults.SIGSTOP,
    faults.RESTART_IMMEDIATE,
    faults.RESTART_FAST,
    faults.TERMINATE,
)
LIVE = ("pending", "running", "sleeping", "waiting")


@dataclass
class Violation:
    kind: str
    text: str
    execution_id: int | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReRun:
    execution_id: int
    step: str
    worker: str
    claims: int
    cause: str
    at: float


@dataclass
class Findings:
    counts: dict[str, Any] = field(default_factory=dict)
    reruns: list[ReRun] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)


def epoch(value: Any) -> float | None:
    return None if value is None else value.timestamp()


class LeaseHistory:
    """One execution's states in time order, as the trigger logged them."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries
        self.ats = [entry["at"] for entry in entries]

    def state_at(self, t: float) -> dict[str, Any] | None:
        index = bisect.bisect_right(self.ats, t) - 1
        return self.entries[index] if index >= 0 else None

    def held(self, claims: int, t: float) -> bool:
        """Claim ``claims`` held a valid lease at ``t``: running, its claim, not expired."""
        state = self.state_at(t)
        return (
            state is not None
            and state["status"] == "running"
            and state["claims"] == claims
            and state["expires"] is not None
            and state["expires"] > t
        )

    def end_of(self, claims: int) -> dict[str, Any] | None:
        """The first state after claim ``claims`` began that is no longer that claim running."""
        began = False
        for entry in self.entries:
            mine = entry["status"] == "running" and entry["claims"] == claims
            if mine:
                began = True
            elif began:
                return entry
        return None

    def lease_end(self, claims: int, t: float) -> float | None:
        """When claim ``claims`` last stopped holding the lease before ``t``."""
        end = None
        for entry in self.entries:
            if entry["at"] > t:
                break
            mine = entry["status"] == "running" and entry["claims"] == claims
            if mine and entry["expires"] is not None:
                end = entry["expires"]
            elif not mine and end is not None:
                end = min(end, entry["at"])
        return end


def load(conn) -> dict[str, Any]:
    def rows(statement: str) -> list[dict[str, Any]]:
        cursor = conn.execute(statement)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    return {
        "executions": rows(
            "SELECT id, task_name, payload, status, result, error, attempts, claims, parent_id "
            "FROM django_conductor_execution ORDER BY id"
        ),
        "steps": rows(
            "SELECT execution_id, name, kind, result, error, finished_at "
            "FROM django_conductor_step ORDER BY id"
        ),
        "ledger": rows(f"SELECT * FROM {LEDGER} ORDER BY id"),
        "log": rows(f"SELECT * FROM {LEASE_LOG} ORDER BY execution_id, at, id"),
        "failures": rows("SELECT execution_id, error FROM django_conductor_failedexecution"),
    }


def analyse(data: dict[str, Any], *, injected: list[faults.Fault], pool, t0: float) -> Findings:
    found = Findings()
    workers = {inc.pid: inc.worker_id for inc in pool.all}

    def rel(t: float | None) -> str:
        return "never" if t is None else f"+{t - t0:.3f}s"

    def who(pid: int) -> str:
        return f"{workers.get(pid, '?')} (pid {pid})"

    def violation(kind: str, text: str, execution_id: int | None = None, **evidence: Any):
        found.violations.append(Violation(kind, text, execution_id, evidence))

    executions = {row["id"]: row for row in data["executions"]}
    histories: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in data["log"]:
        entry = {**entry, "at": epoch(entry["at"]), "expires": epoch(entry["lease_expires_at"])}
        histories[entry["execution_id"]].append(entry)
    history = {eid: LeaseHistory(entries) for eid, entries in histories.items()}
    ledger = [
        {**row, "called_at": epoch(row["called_at"]), "done_at": epoch(row["done_at"])}
        for row in data["ledger"]
    ]
    recorded = {
        (step["execution_id"], step["name"]): step
        for step in data["steps"]
        if step["kind"] == "step" and step["finished_at"] is not None and not step["error"]
    }

    _check_outcomes(found, executions, recorded, ledger, history, violation)
    _check_claims(found, history, violation, rel)
    _check_ledger(found, ledger, recorded, history, injected, violation, rel, who)
    _check_exits(pool, violation, rel)

    parents = [e for e in executions.values() if e["task_name"] == "chaos-steps"]
    found.counts.update(
        executions=len(parents),
        children=len(executions) - len(parents),
        completed=sum(e["status"] == "completed" for e in executions.values()),
        side_effects=len(ledger),
        recorded_steps=len(recorded),
        claims=sum(e["claims"] for e in executions.values()),
        failure_records=len(data["failures"]),
        faults=Counter(fault.kind for fault in injected),
        worker_starts=len(pool.all),
    )
    return found


def _check_outcomes(found, executions, recorded, ledger, history, violation) -> None:
    runs = {row["run"] for row in ledger}
    children = defaultdict(list)
    for execution in executions.values():
        if execution["parent_id"] is not None:
            children[execution["parent_id"]].append(execution)
    for eid, execution in executions.items():
        payload = execution["payload"] or {}
        if execution["status"] in LIVE:
            violation(
                STRANDED,
                f"execution {eid} ({execution['task_name']}) is still {execution['status']} "
                f"after {execution['claims']} claims",
                eid,
            )
            continue
        if execution["status"] != "completed":
            violation(
                NOT_COMPLETED,
                f"execution {eid} ended {execution['status']}: {execution['error'][:200]}",
                eid,
            )
            continue
        if execution["task_name"] == "chaos-steps":
            expected = expected_result(payload)
            names = [f"s{i:02d}" for i in range(payload["steps"])]
            wanted_children = 1 if payload.get("child_at") is not None else 0
            if len(children[eid]) != wanted_children:
                violation(
                    WRONG_RESULT,
                    f"execution {eid} has {len(children[eid])} children, not {wanted_children}",
                    eid,
                )
        else:
            n = payload["n"]
            expected = {"n": n, "sum": sum(step_value(n, i, child=True) for i in range(3))}
            names = [f"c{i}" for i in range(3)]
        if execution["result"] != expected:
            violation(
                WRONG_RESULT,
                f"execution {eid} returned {execution['result']!r}, not {expected!r}",
                eid,
            )
        for name in names:
            step = recorded.get((eid, name))
            token = (step["result"] or {}).get("run") if step else None
            if token not in runs:
                violation(
                    UNRECORDED_EFFECT,
                    f"execution {eid} step {name}: "
                    + ("no step record" if step is None else f"run {token} is not in the ledger"),
                    eid,
                )
        entries = history[eid].entries if eid in history else []
        completions = [
            e for e in entries if e["status"] == "completed" and e["old_status"] != "completed"
        ]
        if len(completions) != 1:
            violation(
                COMPLETED_TWICE,
                f"execution {eid} became completed {len(completions)} times",
                eid,
            )


def _check_claims(found, history, violation, rel) -> None:
    """From the lease log: a claim is taken only from a claimable state, one number at a time,
    and a lease never passes to another worker without a new claim."""
    for eid, lease in history.items():
        for entry in lease.entries:
            if entry["old_claims"] is None or entry["claims"] == entry["old_claims"]:
                if (
                    entry["old_status"] == "running"
                    and entry["status"] == "running"
                    and entry["lease_owner"] is None
                ):
                    violation(CLAIM_FROM_LIVE, f"execution {eid}: a running row lost its owner")
                continue
            if entry["old_status"] == "running" or entry["claims"] != entry["old_claims"] + 1:
                violation(
                    CLAIM_FROM_LIVE,
                    f"execution {eid}: claim {entry['old_claims']} -> {entry['claims']} at "
                    f"{rel(entry['at'])} from status {entry['old_status']} "
                    f"(owner now {entry['lease_owner']})",
                    eid,
                )


def _check_ledger(found, ledger, recorded, history, injected, violation, rel, who) -> None:
    by_claim: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    by_execution: dict[int, dict[int, list[dict[str, Any]]]] = defaultdict(dict)
    for row in ledger:
        by_claim[row["execution_id"], row["claims"]].append(row)
        by_execution[row["execution_id"]].setdefault(row["claims"], []).append(row)
    empty = LeaseHistory([])

    def lease_text(eid: int, t: float) -> str:
        state = history.get(eid, empty).state_at(t)
        if state is None:
            return "no lease state logged"
        return (
            f"the row was {state['status']}, claim {state['claims']}, owner "
            f"{state['lease_owner']}, lease until {rel(state['expires'])}"
        )

    by_run = {row["run"]: row for row in ledger}
    overlaps = 0
    for claims in by_execution.values():
        spans = sorted(
            (min(r["done_at"] for r in rows), max(r["done_at"] for r in rows), c)
            for c, rows in claims.items()
        )
        for i, (_, last, _) in enumerate(spans):
            overlaps += sum(1 for first, _, _ in spans[i + 1 :] if first < last)
    found.counts["overlapping_runs"] = overlaps

    for (eid, claims), rows in sorted(by_claim.items()):
        lease = history.get(eid, empty)
        pids = sorted({row["pid"] for row in rows})
        if claims < 0:
            violation(UNKNOWN_CLAIM, f"execution {eid}: ctx no longer shows its claim", eid)
            continue
        if len(pids) > 1:
            violation(
                SHARED_CLAIM,
                f"execution {eid} claim {claims} ran in {', '.join(who(p) for p in pids)}",
                eid,
            )
        unrecorded = []
        for row in rows:
            step = recorded.get((eid, row["step"]))
            committed_by = (step["result"] or {}).get("run") if step else None
            where = (
                f"execution {eid} step {row['step']}: run by {who(row['pid'])} as claim "
                f"{claims}, called {rel(row['called_at'])}, side effect {rel(row['done_at'])}"
            )
            if row["step_committed"]:
                committer = by_run.get(committed_by)
                by = (
                    f"claim {committer['claims']} of {who(committer['pid'])}, side effect "
                    f"{rel(committer['done_at'])}"
                    if committer
                    else "an unknown run"
                )
                violation(
                    COMMITTED_RERUN,
                    f"{where}; the step was already recorded by {by}, committed "
                    f"{rel(epoch(step['finished_at']) if step else None)}; "
                    f"{lease_text(eid, row['called_at'])}",
                    eid,
                )
                continue
            if not lease.held(claims, row["called_at"]):
                violation(
                    NO_LEASE,
                    f"{where}; claim {claims}'s lease ended "
                    f"{rel(lease.lease_end(claims, row['called_at']))}; at the call "
                    f"{lease_text(eid, row['called_at'])}",
                    eid,
                )
                continue
            if committed_by != row["run"]:
                unrecorded.append((row, where))
        if len(unrecorded) > 1:
            violation(
                TWO_UNRECORDED,
                f"execution {eid} claim {claims} ran {len(unrecorded)} steps it never "
                "recorded: " + "; ".join(where for _, where in unrecorded),
                eid,
            )
        for row, where in unrecorded[:1]:
            end = lease.end_of(claims)
            end_at = end["at"] if end else math.inf
            causes = _causes(row, end_at, injected)
            allowed = [cause for cause in ALLOWED_CAUSES if cause in causes]
            how = (
                f"claim {claims} ended {rel(end['at'])} as {end['status']}"
                if end
                else f"claim {claims} never ended"
            )
            if allowed:
                found.reruns.append(
                    ReRun(eid, row["step"], who(row["pid"]), claims, allowed[0], row["done_at"])
                )
            elif faults.SIGTERM in causes:
                violation(SIGTERM_RERUN, f"{where}; {how}; its worker had SIGTERM", eid)
            else:
                violation(UNEXPLAINED_RERUN, f"{where}; {how}; no fault hit it", eid)


def _causes(row: dict[str, Any], end_at: float, injected: list[faults.Fault]) -> set[str]:
    """The faults that can explain why this run's step went unrecorded: those that hit its
    worker, or the database, between the step's call and the end of its claim."""
    low, high = row["called_at"] - 0.5, end_at + 0.5
    causes = set()
    for fault in injected:
        if fault.pid is not None and fault.pid != row["pid"]:
            continue
        until = fault.until if fault.until is not None else fault.at
        if fault.at <= high and until >= low:
            causes.add(fault.kind)
    return causes


def _check_exits(pool, violation, rel) -> None:
    expected = {"kill": -9, "term": 0, "final-term": 0}
    for inc in pool.all:
        code = inc.poll()
        if inc.fate == "term-timeout":
            violation(
                EXIT_CODE,
                f"{inc.worker_id} (pid {inc.pid}) did not exit within the grace and 30 s "
                f"after SIGTERM at {rel(inc.fate_at)}; killed. Its log ends:\n{inc.tail()}",
            )
        elif inc.fate is None:
            violation(
                EXIT_CODE,
                f"{inc.worker_id} (pid {inc.pid}) exited by itself with code {code} at "
                f"{rel(inc.exited_at)}. Its log ends:\n{inc.tail()}",
            )
        elif code != expected[inc.fate]:
            violation(
                EXIT_CODE,
                f"{inc.worker_id} (pid {inc.pid}) exited {code} after {inc.fate} at "
                f"{rel(inc.fate_at)}, not {expected[inc.fate]}. Its log ends:\n{inc.tail()}",
            )
