"""The summary table (markdown, so that docs/reliability.md can take it as printed) and the
evidence of every violation."""

from __future__ import annotations

from collections import Counter
from typing import Any

from . import checks
from .faults import KINDS

#: Violations printed in full per kind; the JSON file has them all.
EXAMPLES = 8


def render(findings: checks.Findings) -> str:
    counts = findings.counts
    rows: list[tuple[str, str]] = []
    total = counts["executions"] + counts["children"]
    settled = counts["settled_seconds"]
    rows += [
        ("seed / size", f"{counts['seed']} / {counts['size']}"),
        ("workers x threads", f"{counts['workers']} x {counts['concurrency']}"),
        ("executions (+ children)", f"{counts['executions']} (+ {counts['children']})"),
        ("completed", f"{counts['completed']} of {total}"),
        ("worker processes started", str(counts["worker_starts"])),
    ]
    for kind in KINDS:
        rows.append((f"faults: {kind}", str(counts["faults"].get(kind, 0))))
    rows += [
        ("claims (runs started)", str(counts["claims"])),
        ("side effects / recorded steps", f"{counts['side_effects']} / {counts['recorded_steps']}"),
        ("runs of one execution overlapping in time", str(counts["overlapping_runs"])),
        ("re-runs of the step in flight (allowed)", str(len(findings.reruns))),
    ]
    by_cause = Counter(rerun.cause for rerun in findings.reruns)
    for cause, count in sorted(by_cause.items()):
        rows.append((f"  re-runs after {cause}", str(count)))
    by_kind = Counter(violation.kind for violation in findings.violations)
    rows.append(("violations", str(len(findings.violations))))
    for kind in checks.VIOLATION_KINDS:
        if by_kind.get(kind):
            rows.append((f"  {kind}", str(by_kind[kind])))
    rows.append(("failure records", str(counts["failure_records"])))
    if settled:
        rows.append(
            (
                "throughput",
                f"{counts['completed'] / settled:.1f} executions/s, "
                f"{counts['side_effects'] / settled:.0f} steps/s",
            )
        )
    rows += [
        (
            "duration",
            f"faults {counts['fault_seconds']:.0f}s, settled "
            + (f"{settled:.0f}s" if settled else "never"),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = ["", f"| {'measure':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    for note in counts.get("notes") or []:
        lines.append(f"note: {note}")
    for kind in checks.VIOLATION_KINDS:
        these = [v for v in findings.violations if v.kind == kind]
        if not these:
            continue
        lines += ["", f"VIOLATION {kind} ({len(these)}):"]
        lines += [f"  - {v.text}" for v in these[:EXAMPLES]]
        if len(these) > EXAMPLES:
            lines.append(f"  ... and {len(these) - EXAMPLES} more")
    if findings.reruns:
        lines += ["", "re-runs (allowed: the step in flight when its run was lost):"]
        lines += [
            f"  - execution {r.execution_id} step {r.step}: claim {r.claims} of {r.worker}, "
            f"after {r.cause}"
            for r in findings.reruns[:EXAMPLES]
        ]
        if len(findings.reruns) > EXAMPLES:
            lines.append(f"  ... and {len(findings.reruns) - EXAMPLES} more")
    lines.append("")
    lines.append("PASS: no violation" if not findings.violations else "FAIL: violations above")
    return "\n".join(lines)


def as_json(findings: checks.Findings, injector: Any) -> dict[str, Any]:
    counts = {**findings.counts, "faults": dict(findings.counts["faults"])}
    return {
        "counts": counts,
        "faults": [fault.as_dict() for fault in injector.faults],
        "reruns": [vars(rerun) for rerun in findings.reruns],
        "violations": [vars(violation) for violation in findings.violations],
    }
