"""The markdown tables and the targets, from the results of one run."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PEER_LABELS = {
    "procrastinate": "Procrastinate",
    "django-tasks-db": "django-tasks-db",
    "dbos": "DBOS",
    "chancy": "Chancy",
    "absurd": "Absurd",
}


def peer_label(name: str, version: str = "", concurrency: int | str = 1, settings: str = "") -> str:
    """The peer's name and version, and how many jobs its worker ran at once unless one at a
    time: a ``NAME-cN`` run away from its defaults (to match ours, 10 executions at once; with
    the other ``settings`` its driver changed for it, if any), or its own default
    ``concurrency`` as its driver reported it."""
    note = ""
    if match := re.fullmatch(r"(.+)-c(\d+)", name):
        name, note = match[1], ", ".join(filter(None, [f"concurrency {match[2]}", settings]))
    elif isinstance(concurrency, str):
        note = f"{concurrency} concurrency (its default)"
    elif concurrency != 1:
        note = f"concurrency {concurrency} (its default)"
    label = f"{PEER_LABELS.get(name, name)} {version}".strip()
    return f"{label}, {note}" if note else label


@dataclass
class Target:
    """One target of the issue: ``measured`` against ``limit``; ``higher`` is better or not."""

    name: str
    measured: float | None
    limit: float
    higher: bool = True
    unit: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        if self.measured is None or math.isnan(self.measured):
            return "not measured" + (f" ({self.note})" if self.note else "")
        if self.passed:
            return "pass"
        if self.higher:
            short = 1 - self.measured / self.limit
            return f"MISS ({short:.0%} short)"
        over = self.measured / self.limit - 1
        return f"MISS ({over:.0%} over)"

    @property
    def passed(self) -> bool:
        if self.measured is None or math.isnan(self.measured):
            return False
        return self.measured >= self.limit if self.higher else self.measured <= self.limit

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": self.measured,
            "limit": self.limit,
            "higher_is_better": self.higher,
            "unit": self.unit,
            "status": self.status,
            "passed": self.passed,
        }


def _num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _get(results: dict[str, Any], *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def best_peer_noop(results: dict[str, Any]) -> tuple[str, float] | None:
    rates = [
        (name, peer["noop"]["rate"])
        for name, peer in (results.get("peers") or {}).items()
        if isinstance(peer, dict) and isinstance(peer.get("noop"), dict) and "rate" in peer["noop"]
    ]
    return max(rates, key=lambda item: item[1]) if rates else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator and denominator else None


def targets(results: dict[str, Any]) -> list[Target]:
    noop = _get(results, "noop", "rate")
    notify_p50 = _get(results, "pickup", "notify", "p50_ms")
    best = best_peer_noop(results)
    scale_ratio = _get(results, "scale", "ratio")
    return [
        Target("no-op throughput, 1 worker", noop, 4_000, unit="executions/s"),
        Target(
            "no-op throughput ÷ best peer",
            noop / best[1] if noop and best else None,
            5,
            unit="x",
            note="run with --peers" if best is None else "",
        ),
        Target("step checkpoints", _get(results, "steps", "rate"), 3_000, unit="steps/s"),
        Target("pickup latency p50", _get(results, "pickup", "p50_ms"), 5, higher=False, unit="ms"),
        Target(
            "pickup latency p99", _get(results, "pickup", "p99_ms"), 20, higher=False, unit="ms"
        ),
        Target(
            "pickup p50 ÷ NOTIFY round trip",
            _ratio(_get(results, "pickup", "p50_ms"), notify_p50),
            2,
            higher=False,
            unit="x",
        ),
        Target(
            "pickup p50, half busy ÷ NOTIFY round trip",
            _ratio(_get(results, "pickup", "busy", "p50_ms"), notify_p50),
            2,
            higher=False,
            unit="x",
        ),
        Target("pickup p99, idle", _get(results, "pickup", "p99_ms"), 10, higher=False, unit="ms"),
        Target(
            "pickup p99, half busy",
            _get(results, "pickup", "busy", "p99_ms"),
            10,
            higher=False,
            unit="ms",
        ),
        Target(
            "invoke() one at a time", _get(results, "invoke", "single_rate"), 2_000, unit="calls/s"
        ),
        Target(
            "invoke() one at a time ÷ pgbench, 1 client",
            _ratio(_get(results, "invoke", "single_rate"), _get(results, "pgbench", "c1_tps")),
            0.6,
            unit="x",
        ),
        Target(
            "invoke() in a transaction ÷ bare psycopg INSERT",
            _get(results, "invoke", "in_transaction_ratio"),
            1.5,
            higher=False,
            unit="x",
        ),
        Target("invoke_many", _get(results, "invoke", "many_rate"), 20_000, unit="rows/s"),
        Target("throughput with 1M finished rows ÷ empty table", scale_ratio, 0.8, unit="x"),
        Target(
            "claim with 100,000 parked ÷ empty table",
            _get(results, "parked", "ratio"),
            1.5,
            higher=False,
            unit="x",
        ),
        Target(
            "worker peak RSS at concurrency 20",
            _get(results, "memory", "c20", "peak_rss_mb"),
            120,
            higher=False,
            unit="MB",
        ),
    ]


def _of_pg(rate: float | None, pg: dict[str, Any] | None) -> str:
    if not rate or not pg or "c1_tps" not in pg:
        return ""
    return f"{rate / pg['c1_tps']:.0%} / {rate / pg['c4_tps']:.0%}"


def main_table(results: dict[str, Any], failures: dict[str, str]) -> str:
    pg = results.get("pgbench") if isinstance(results.get("pgbench"), dict) else None
    status = {t.name: t.status for t in targets(results)}
    rows: list[tuple[str, str, str, str, str]] = []

    def add(
        workload: str,
        measured: str,
        target: str = "",
        verdict: str = "",
        rate: float | None = None,
    ) -> None:
        rows.append((workload, measured, target, verdict, _of_pg(rate, pg)))

    def section(key: str, build: Callable[[dict[str, Any]], None], label: str) -> None:
        if key in failures:
            add(label, f"**FAILED**: {failures[key].splitlines()[0][:160]}")
        elif isinstance(results.get(key), dict):
            first = len(rows)
            build(results[key])
            repeats = results[key].get("repeats")
            if repeats:
                for index in range(first, len(rows)):
                    workload, measured, *rest = rows[index]
                    note = f" (median run of {len(repeats)})"
                    rows[index] = (workload, measured + note, *rest)  # type: ignore[assignment]

    def noop(r: dict[str, Any]) -> None:
        add(
            f"1. no-op throughput, 1 worker ({r['executions']:,} executions)",
            f"{_num(r['rate'])} executions/s",
            "≥ 4,000/s",
            status["no-op throughput, 1 worker"],
            r["rate"],
        )

    def noop2(r: dict[str, Any]) -> None:
        add(
            f"1. no-op throughput, 2 workers ({r['executions']:,})",
            f"{_num(r['rate'])} executions/s",
            rate=r["rate"],
        )

    def step(r: dict[str, Any]) -> None:
        add(
            f"2. step checkpoints ({r['executions']:,} x 10 steps)",
            f"{_num(r['rate'])} steps/s ({_num(r['executions_rate'])} executions/s)",
            "≥ 3,000/s",
            status["step checkpoints"],
            r["rate"],
        )

    def latency(r: dict[str, Any]) -> None:
        add(
            f"3. pickup latency p50 / p95 / p99 ({r['executions']}, {r['gap_ms']:g} ms apart)",
            f"{_num(r['p50_ms'], 1)} / {_num(r['p95_ms'], 1)} / {_num(r['p99_ms'], 1)} ms",
            "p50 ≤ 5, p99 ≤ 20 ms",
            f"{status['pickup latency p50']}, {status['pickup latency p99']}",
        )
        notify = r.get("notify") or {}
        ratio = _ratio(r["p50_ms"], notify.get("p50_ms"))
        add(
            "3. pickup p50 ÷ NOTIFY round trip p50; p99, idle",
            f"{_num(ratio, 2)}x ({_num(notify.get('p50_ms'), 2)} ms trip); "
            f"{_num(r['p99_ms'], 1)} ms",
            "≤ 2x; ≤ 10 ms",
            f"{status['pickup p50 ÷ NOTIFY round trip']}, {status['pickup p99, idle']}",
        )
        if "invoke_p50_ms" in r:
            add(
                "3. pickup p50 ÷ the invoke() call's own p50 (its statement and commit), idle",
                f"{_num(_ratio(r['p50_ms'], r['invoke_p50_ms']), 2)}x "
                f"({_num(r['invoke_p50_ms'], 2)} ms a call)",
            )
        busy = r.get("busy")
        if busy:
            add(
                f"3. pickup, {busy['busy_threads']} threads busy: p50 / p95 / p99; "
                "p50 ÷ round trip",
                f"{_num(busy['p50_ms'], 1)} / {_num(busy['p95_ms'], 1)} / "
                f"{_num(busy['p99_ms'], 1)} ms; "
                f"{_num(_ratio(busy['p50_ms'], notify.get('p50_ms')), 2)}x",
                "≤ 2x; p99 ≤ 10 ms",
                f"{status['pickup p50, half busy ÷ NOTIFY round trip']}, "
                f"{status['pickup p99, half busy']}",
            )

    def invoke(r: dict[str, Any]) -> None:
        add(
            f"4. invoke(), one thread, autocommit ({r['single_calls']:,} calls)",
            f"{_num(r['single_rate'])} calls/s",
            "≥ 2,000/s",
            status["invoke() one at a time"],
            r["single_rate"],
        )
        add(
            "4. invoke() one at a time ÷ pgbench's one-client INSERT rate",
            f"{_num(_ratio(r['single_rate'], (pg or {}).get('c1_tps')), 2)}x",
            "≥ 0.6x",
            status["invoke() one at a time ÷ pgbench, 1 client"],
        )
        if "bare_autocommit_rate" in r:
            add(
                "4. invoke() one at a time vs a bare psycopg INSERT of the same row, autocommit",
                f"{_num(r['single_rate'])} vs {_num(r['bare_autocommit_rate'])} per s "
                f"({_num(_ratio(r['single_rate'], r['bare_autocommit_rate']), 2)}x)",
            )
        if "in_transaction_ms" in r:
            add(
                "4. invoke() in an open transaction vs a bare psycopg INSERT, per call",
                f"{_num(r['in_transaction_ms'], 3)} vs {_num(r['bare_insert_ms'], 3)} ms "
                f"({r['in_transaction_ratio']:.2f}x)",
                "≤ 1.5x",
                status["invoke() in a transaction ÷ bare psycopg INSERT"],
            )
        if "django_insert_ms" in r:
            add(
                "4. invoke() in an open transaction vs the same INSERT through Django's cursor",
                f"{_num(r['in_transaction_ms'], 3)} vs {_num(r['django_insert_ms'], 3)} ms "
                f"({_num(_ratio(r['in_transaction_ms'], r['django_insert_ms']), 2)}x)",
            )
        add(
            f"4. invoke_many ({r['many_rows']:,} rows, {r['many_batch']:,} a call)",
            f"{_num(r['many_rate'])} rows/s",
            "≥ 20,000/s",
            status["invoke_many"],
        )

    def child(r: dict[str, Any]) -> None:
        add(
            f"5. sleep(0) + child invoke ({r['executions']:,} parents)",
            f"{_num(r['rate'])} parents/s",
            rate=r["rate"],
        )

    def scaled(r: dict[str, Any]) -> None:
        empty, loaded = r["empty"], r["loaded"]
        add(
            f"6. no-op throughput, empty vs {r['rows']:,} finished rows ({r['executions']:,})",
            f"{_num(empty['rate'])} vs {_num(loaded['rate'])} executions/s ({r['ratio']:.2f}x)",
            "≥ 0.80x",
            status["throughput with 1M finished rows ÷ empty table"],
        )
        claims = [empty["claim"], loaded["claim"]]
        if all("p50_ms" in c for c in claims):
            measured = " vs ".join(
                f"{_num(c['p50_ms'], 2)} ms (server {_num(c['explain_ms'], 2)})" for c in claims
            )
        else:
            measured = "; ".join(c.get("error", "") for c in claims if "error" in c)
        add("6. claim statement, limit 10, p50: empty vs loaded", measured)

    def parked(r: dict[str, Any]) -> None:
        claims = [r["empty"], r["parked"]]
        if "ratio" not in r:
            add(
                "6. claim, limit 10, with parked work",
                "; ".join(c.get("error", "") for c in claims),
            )
            return
        measured = " vs ".join(
            f"{_num(c['p50_ms'], 2)} ms (server {_num(c['explain_ms'], 2)})" for c in claims
        )
        add(
            f"6. claim, limit 10, p50: empty vs {r['rows']:,} parked",
            f"{measured} ({r['ratio']:.2f}x)",
            "≤ 1.5x",
            status["claim with 100,000 parked ÷ empty table"],
        )

    def cron(r: dict[str, Any]) -> None:
        add(
            f"10. cron, {r['schedules']:,} schedules: schedule() / heartbeat, none due (p50) / "
            "advancing all",
            f"{_num(r['schedule_rate'])} schedules/s / {_num(r['idle_p50_ms'], 2)} ms / "
            f"{_num(r['catch_up_ms'])} ms ({_num(r['catch_up_per_schedule_ms'], 2)} ms each)",
        )

    def emitted(r: dict[str, Any]) -> None:
        one, ten = r["to_1"], r["to_10"]
        add(
            f"11. emit(), one thread, autocommit ({r['emits']:,} events): to 1 / to 10 subscribers",
            f"{_num(one['events_per_s'])} / {_num(ten['events_per_s'])} events/s "
            f"({_num(ten['executions_per_s'])} executions/s)",
        )

    def row_trigger(r: dict[str, Any]) -> None:
        add(
            f"12. bulk_create of {r['rows']:,} rows: subscribed table vs plain (one execution "
            "per row)",
            f"{_num(r['triggered_ms'])} vs {_num(r['plain_ms'])} ms ({r['ratio']:.2f}x)",
            "< 2x",
            "pass" if r["ratio"] < 2 else f"MISS ({r['ratio']:.2f}x)",
        )

    def limits(r: dict[str, Any]) -> None:
        add(
            f"13. {r['executions']:,} no-ops: concurrency=5 / unlimited",
            f"{_num(r['limited_rate'])} / {_num(r['unlimited_rate'])} per s",
        )
        loss = r["mixed_loss"]
        add(
            f"13. unlimited no-ops beside a backlog of {r['backlog']:,} limited: loss",
            f"{_num(r['mixed_rate'])}/s ({loss:.0%} loss)",
            "< 10%",
            "pass" if loss < 0.10 else f"MISS ({loss:.0%})",
        )

    def pruned(r: dict[str, Any]) -> None:
        add(
            f"14. conductor_prune of {r['rows']:,} finished rows, a worker running no-ops",
            f"{_num(r['prune_s'], 1)} s ({_num(r['rows_per_s'])} rows/s); no-ops "
            f"{_num(r['noop_during'])}/s during vs {_num(r['noop_without'])}/s without "
            f"({r['ratio']:.2f}x)"
            + ("; autovacuum off, VACUUM every 10 s instead" if r.get("vacuum_stand_in") else ""),
            "≥ 0.8x",
            "pass" if r["ratio"] >= 0.8 else f"MISS ({r['ratio']:.2f}x)",
        )

    def batched(r: dict[str, Any]) -> None:
        add(
            f"15. {r['rows']:,} rows inserted, 1 worker: batch=100 bulk_create / one each",
            f"{_num(r['batch_rate'])} / {_num(r['one_rate'])} rows/s ({r['speedup']:.1f}x)",
        )

    def telemetry(r: dict[str, Any]) -> None:
        add(
            f"16. no-op throughput, 1 worker ({r['executions']:,}): telemetry off / a receiver "
            "on each signal / OpenTelemetry SDK, discarding exporters",
            f"{_num(r['off_rate'])} / {_num(r['signals_rate'])} ({r['signals_ratio']:.2f}x) / "
            f"{_num(r['otel_rate'])} ({r['otel_ratio']:.2f}x) executions/s",
        )

    def scaleout(r: dict[str, Any]) -> None:
        for key, label, unit in (
            ("noop", "no-op", "executions/s"),
            ("steps", "ten steps", "steps/s"),
        ):
            part = r.get(key)
            if not isinstance(part, dict):
                continue
            drains = list(part["drains"].values())
            size = f"{part['executions']:,}" + (" x 10 steps" if part["steps_each"] else "")
            rates = f"{_each(drains, 'steps_rate' if part['steps_each'] else 'rate')} {unit}"
            if part["steps_each"]:
                rates += f" ({_each(drains, 'rate')} executions/s)"
            add(
                f"17. scale-out: {label}, {' / '.join(str(d['workers']) for d in drains)} "
                f"workers ({size})",
                f"{rates}; {_cpu_shares(drains, r.get('database_cpu'))}",
            )

    def mem(r: dict[str, Any]) -> None:
        add(
            "7. worker peak RSS, concurrency 1 / 20",
            f"{_num(r['c1']['peak_rss_mb'], 1)} / {_num(r['c20']['peak_rss_mb'], 1)} MB",
            "≤ 120 MB at 20",
            status["worker peak RSS at concurrency 20"],
        )

    def peers_vs(r: dict[str, Any]) -> None:
        best = best_peer_noop(results)
        if best is None:
            add("8. no-op throughput ÷ best peer", "no peer measured", "≥ 5x")
            return
        ours = _get(results, "noop", "rate")
        if ours is None:
            add("8. no-op throughput ÷ best peer", "no-op throughput not measured", "≥ 5x")
            return
        ratio = ours / best[1]
        add(
            "8. no-op throughput ÷ best peer",
            f"{ratio:.1f}x the best peer ({_num(best[1])}/s; see the peers table)",
            "≥ 5x",
            status["no-op throughput ÷ best peer"],
        )

    def limit(r: dict[str, Any]) -> None:
        if "skipped" in r:
            add("9. PostgreSQL one-row INSERT (pgbench)", f"skipped: {r['skipped']}")
        else:
            add(
                "9. PostgreSQL one-row INSERT (pgbench), 1 / 4 clients",
                f"{_num(r['c1_tps'])} / {_num(r['c4_tps'])} tps",
            )

    section("noop", noop, "1. no-op throughput, 1 worker")
    section("noop2", noop2, "1. no-op throughput, 2 workers")
    section("steps", step, "2. step checkpoints")
    section("pickup", latency, "3. pickup latency")
    section("invoke", invoke, "4. invoke rate")
    section("sleep-child", child, "5. sleep + child round trip")
    section("scale", scaled, "6. scale")
    section("parked", parked, "6. claim with parked work")
    section("memory", mem, "7. memory")
    section("cron", cron, "10. cron")
    section("emit", emitted, "11. emit")
    section("row-trigger", row_trigger, "12. row triggers")
    section("limits", limits, "13. concurrency limits")
    section("prune", pruned, "14. pruning")
    section("batch", batched, "15. batch handlers")
    section("telemetry", telemetry, "16. telemetry")
    section("scaleout", scaleout, "17. scale-out")
    section("peers", peers_vs, "8. peers")
    section("pgbench", limit, "9. pgbench")
    lines = [
        "| workload | measured | target | result | of PostgreSQL's INSERT rate (1 / 4 clients) |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _each(drains: list[dict[str, Any]], key: str, digits: int = 0) -> str:
    """One figure of every drain, "2,900 / 3,100 / 3,000"."""
    return " / ".join(_num(d.get(key), digits) for d in drains)


def _cpu_shares(drains: list[dict[str, Any]], not_measured: str | None) -> str:
    """The CPU of the database, the workers and the whole machine over each drain's window,
    as shares of the machine's capacity, then in cpu-seconds per 1,000 executions. The
    database is every PostgreSQL process on the machine; the backends serving the benchmark
    database alone are beside it, since a shared server also works for others."""
    cpus = [d["cpu"] for d in drains]

    def shares(name: str) -> str:
        return " / ".join(
            "-" if c[f"{name}_share"] is None else f"{c[f'{name}_share']:.0%}" for c in cpus
        )

    def costs(name: str) -> str:
        return _each(cpus, f"{name}_s_per_1000", 2)

    own = "this database's backends"
    database = not_measured or f"database {shares('database')} ({own} {shares('own_backends')})"
    text = f"CPU of {cpus[0]['cpus']} cores: {database}, workers {shares('workers')}, "
    text += f"machine {shares('machine')}; cpu-s per 1,000 executions: "
    if not not_measured:
        text += f"database {costs('database')} ({own} {costs('own_backends')}), "
    return text + f"workers {costs('workers')}"


def _times(ours: float, theirs: float, *, higher_is_better: bool) -> str:
    """ "3.2x better" or "1.7x worse", from our side."""
    better = ours / theirs if higher_is_better else theirs / ours
    if better >= 1:
        return f"{better:.1f}x {'faster' if higher_is_better else 'lower'}"
    return f"{1 / better:.1f}x {'slower' if higher_is_better else 'higher'}"


def peers_table(results: dict[str, Any]) -> str:
    peers = results.get("peers")
    if not isinstance(peers, dict) or not peers:
        return ""
    names = list(peers)
    header = ["workload", "django_conductor"]
    header += [
        peer_label(
            n,
            peers[n].get("version", ""),
            _get(peers[n], "noop", "concurrency") or 1,
            _get(peers[n], "noop", "settings") or "",
        )
        for n in names
    ]
    header += ["django_conductor vs the best peer"]

    def part(name: str, key: str) -> dict[str, Any] | str:
        peer = peers[name]
        if "error" in peer:
            return f"failed: {peer['error'].splitlines()[0][:120]}"
        value = peer.get(key)
        if not isinstance(value, dict):
            return "-"
        if "error" in value:
            return f"failed: {value['error'].splitlines()[0][:120]}"
        return value

    noop = {n: part(n, "noop") for n in names}
    pickup = {n: part(n, "pickup") for n in names}
    noop_ours = _get(results, "noop", "rate")
    p50_ours = _get(results, "pickup", "p50_ms")
    p99_ours = _get(results, "pickup", "p99_ms")

    def noop_cell(value: dict[str, Any] | str) -> str:
        if isinstance(value, str):
            return value
        text = f"{_num(value['rate'], 1 if value['rate'] < 10 else 0)}/s"
        if value.get("capped"):
            text += f" ({value['completed']:,} of {value['executions']:,} run in the time cap)"
        return text

    def pickup_cell(value: dict[str, Any] | str) -> str:
        if isinstance(value, str):
            return value
        return f"{_num(value['p50_ms'], 1)} / {_num(value['p99_ms'], 1)} ms"

    rates = [v["rate"] for v in noop.values() if isinstance(v, dict)]
    p50s = [v["p50_ms"] for v in pickup.values() if isinstance(v, dict)]
    p99s = [v["p99_ms"] for v in pickup.values() if isinstance(v, dict)]
    noop_vs = _times(noop_ours, max(rates), higher_is_better=True) if noop_ours and rates else ""
    pickup_vs = (
        f"p50 {_times(p50_ours, min(p50s), higher_is_better=False)}, "
        f"p99 {_times(p99_ours, min(p99s), higher_is_better=False)}"
        if p50_ours and p99_ours and p50s
        else ""
    )
    rows = [
        ["1. no-op throughput, 1 worker", f"{_num(noop_ours)}/s"]
        + [noop_cell(noop[n]) for n in names]
        + [noop_vs],
        ["3. pickup latency p50 / p99", pickup_cell({"p50_ms": p50_ours, "p99_ms": p99_ours})]
        + [pickup_cell(pickup[n]) for n in names]
        + [pickup_vs],
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
