"""A real PgBouncer in transaction pooling mode in front of the test database, for the tests
that need one: its own ini and auth file in a temp dir, a free port, and stopped when they
are done, never left running."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

BINARY = shutil.which("pgbouncer") or next(
    (path for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(path, os.X_OK)),
    None,
)

INI = """\
[databases]
* = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
admin_users = {user}
logfile =
pidfile =
"""


def version():
    """PgBouncer's version line, e.g. ``PgBouncer 1.18.0``."""
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PgBouncer:
    """PgBouncer in front of the server that ``settings`` (a ``DATABASES`` entry) names,
    multiplexing every client onto ``pool_size`` server connections per database."""

    def __init__(self, settings, *, pool_size=4):
        self.settings = settings
        self.pool_size = pool_size
        self.dir = Path(tempfile.mkdtemp(prefix="conductor-pgbouncer-"))
        self.process = None
        self.port = None

    def start(self, timeout=30.0):
        # PgBouncer refuses to run as root; it then runs as a user who can reach the server.
        self.dir.chmod(0o755)
        self._write("users.txt", f'"{self.user}" ""\n')
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            ini = self._write("pgbouncer.ini", self._ini())
            command = [BINARY, *self._as_user(), str(ini)]
            self.log = (self.dir / "pgbouncer.log").open("w+")
            self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
            if self._accepting(timeout):
                return self
            self.stop()
        raise RuntimeError(f"PgBouncer did not start:\n{self.output()}")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.log.close()
        self.process = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.close()

    def output(self):
        if not (self.dir / "pgbouncer.log").exists():
            return ""
        return (self.dir / "pgbouncer.log").read_text()

    def settings_dict(self):
        """``settings`` with HOST and PORT pointing at PgBouncer."""
        return {**self.settings, "HOST": "127.0.0.1", "PORT": str(self.port)}

    def url(self):
        """A ``DATABASE_URL`` for the same database through PgBouncer."""
        user = quote(self.user, safe="")
        password = quote(self.settings["PASSWORD"] or "", safe="")
        name = quote(self.settings["NAME"], safe="")
        return f"postgres://{user}:{password}@127.0.0.1:{self.port}/{name}"

    @property
    def user(self):
        return self.settings["USER"] or "postgres"

    def connect(self, dbname=None, **kwargs):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            dbname=dbname or self.settings["NAME"],
            **kwargs,
        )

    def show(self, what):
        """Rows of the admin console's ``SHOW what`` (``CLIENTS``, ``POOLS``, ...), as dicts."""
        with self.connect(dbname="pgbouncer", autocommit=True) as conn:
            cursor = conn.execute(f"SHOW {what}")
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def rows(self, what):
        """The rows of ``SHOW what`` about the test database."""
        return [row for row in self.show(what) if row["database"] == self.settings["NAME"]]

    def _ini(self):
        server = []
        for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
            if self.settings.get(key):
                server.append(f"{name}={self.settings[key]}")
        return INI.format(
            server=" ".join(server),
            port=self.port,
            auth_file=self.dir / "users.txt",
            pool_size=self.pool_size,
            user=self.user,
        )

    def _write(self, name, text):
        path = self.dir / name
        path.write_text(text)
        path.chmod(0o644)
        return path

    def _as_user(self):
        if os.geteuid() != 0:
            return []
        host = self.settings.get("HOST") or ""
        if host.startswith("/"):  # a socket directory: run as the server's own user
            return ["-u", pwd.getpwuid(Path(host).stat().st_uid).pw_name]
        try:
            return ["-u", pwd.getpwnam("postgres").pw_name]
        except KeyError:
            return ["-u", "nobody"]

    def _accepting(self, timeout):
        """Whether PgBouncer answers a query through to the server before ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with self.connect(connect_timeout=5) as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.1)
        return False
