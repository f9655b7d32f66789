"""Behind PgBouncer in transaction pooling mode: invoke, a real worker process, ``wait()``
and the admin's reads all go through the pooler, and only the LISTEN connections go to the
server itself (``CONDUCTOR_LISTEN_DATABASE``). Skipped where pgbouncer is not installed."""

import json
import signal

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from django_conductor import invoke
from django_conductor.models import Execution, FailedExecution, Step
from django_conductor.registry import registry
from django_conductor.store.base import FINISHED_CHANNEL, server_cursor
from django_conductor.store.notify import connect_listener

from .conftest import effects
from .pgbouncer import BINARY, PgBouncer, version

#: Fewer server connections than the worker has clients, so that they are shared.
POOL_SIZE = 4


@pytest.fixture
def pgbouncer(transactional_db):
    if BINARY is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    bouncer = PgBouncer(dict(connection.settings_dict), pool_size=POOL_SIZE)
    try:
        yield bouncer.start()
    finally:
        bouncer.close()


@pytest.fixture
def through_pgbouncer(pgbouncer, settings):
    """This process's queries go through PgBouncer, its LISTEN connections to the server."""
    direct = connection.settings_dict
    server = {"HOST": direct["HOST"], "PORT": direct["PORT"]}
    settings.CONDUCTOR_LISTEN_DATABASE = server
    connection.close()
    direct.update(HOST="127.0.0.1", PORT=str(pgbouncer.port))
    try:
        yield pgbouncer
    finally:
        connection.close()
        direct.update(server)


def invoke_many(task_name, payloads):
    return registry.get(task_name).invoke_many(payloads)


def pooled_worker(worker_process, bouncer, *args):
    """A worker whose queries go through PgBouncer and whose LISTEN goes to the server. It
    never polls, so that it finds work only when its listener hears of it."""
    server = {"HOST": bouncer.settings["HOST"], "PORT": bouncer.settings["PORT"]}
    env = {
        "DATABASE_URL": bouncer.url(),
        "CONDUCTOR_TEST_LISTEN_DATABASE": json.dumps(server),
        "CONDUCTOR_TEST_POLL_INTERVAL": "3600",
    }
    return worker_process("--concurrency", "8", *args, env=env)


def test_pgbouncer_runs_in_transaction_mode(pgbouncer):
    """The pooler the other tests run behind: Debian's is 1.18, which keeps no prepared
    statements and no session state from one transaction to the next."""
    assert version().startswith("PgBouncer 1.")
    (pool,) = pgbouncer.rows("POOLS")
    assert pool["pool_mode"] == "transaction"


def test_invoke_worker_wait_and_admin_through_pgbouncer(through_pgbouncer, worker_process):
    bouncer = through_pgbouncer
    worker = pooled_worker(worker_process, bouncer)
    with transaction.atomic():  # a view's invoke, sharing the view's transaction
        in_view = invoke("echo", {"from": "a view"})
    assert connection.connection.info.port == bouncer.port  # invoke went through the pooler
    assert in_view.wait(timeout=60) == {"echo": {"from": "a view"}, "attempt": 1}

    plain = [invoke("double", n) for n in range(1, 21)]
    many = invoke_many("double", range(100, 110))
    durable = [invoke("through-the-pooler", n) for n in (3, 4)]
    assert [handle.wait(timeout=60) for handle in plain] == [2 * n for n in range(1, 21)]
    assert [handle.wait(timeout=60) for handle in many] == [2 * n for n in range(100, 110)]
    for handle, n in zip(durable, (3, 4), strict=True):
        assert handle.wait(timeout=60) == {"first": "pooled-step", "child": 2 * n, "attempt": 2}

    # Every client of the worker shared a few server connections.
    assert len(bouncer.rows("CLIENTS")) > POOL_SIZE

    # The retry replayed the recorded steps, sleep and child: each ran once.
    assert sorted(effects("pooled-step")) == ["3", "4"]
    for handle in durable:
        steps = Step.objects.filter(execution_id=handle.id)
        assert sorted(steps.values_list("name", flat=True)) == ["child", "first", "nap"]
        assert Execution.objects.get(pk=handle.id).attempts == 2

    # Idle now and never polling, the worker hears of new work only through its listener.
    assert invoke("echo", "last").wait(timeout=60) == {"echo": "last", "attempt": 1}
    assert set(Execution.objects.values_list("status", flat=True)) == {"completed"}
    assert not FailedExecution.objects.exists()

    admin = User.objects.create_superuser("admin", password="pw")
    client = Client()
    client.force_login(admin)
    shown = durable[0].id
    pages = [
        reverse("admin:django_conductor_execution_changelist"),
        reverse("admin:django_conductor_execution_change", args=[shown]),
        reverse("admin:django_conductor_execution_overview"),
        reverse("admin:django_conductor_failedexecution_changelist"),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
    assert "through-the-pooler" in client.get(pages[1]).content.decode()

    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output
    assert "Traceback" not in worker.output, worker.output
    assert "prepared statement" not in worker.output, worker.output


def test_wait_listens_on_the_server_past_the_pooler(through_pgbouncer):
    bouncer = through_pgbouncer
    with connect_listener(FINISHED_CHANNEL) as listener:
        assert listener.info.port != bouncer.port
        listening = listener.execute("SELECT pg_listening_channels()").fetchall()
    assert listening == [(FINISHED_CHANNEL,)]


def test_prepare_prepares_nothing_on_djangos_default_connection(transactional_db):
    """Django's psycopg connections prepare nothing unless OPTIONS["prepare_threshold"] says
    otherwise, so ``execute(..., prepare=True)`` is safe behind PgBouncer 1.18."""
    assert connection.settings_dict["OPTIONS"].get("prepare_threshold") is None
    connection.ensure_connection()
    with server_cursor(connection.connection) as cursor:
        for _ in range(3):
            cursor.execute("SELECT %s::int", [1], prepare=True)
        prepared = cursor.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()[0]
    assert prepared == 0


def test_prepare_threshold_in_options_turns_prepared_statements_on(transactional_db):
    options = {**connection.settings_dict["OPTIONS"], "prepare_threshold": 5}
    wrapper = type(connections["default"])
    prepared_db = wrapper({**connection.settings_dict, "OPTIONS": options}, "prepared")
    try:
        prepared_db.ensure_connection()
        with server_cursor(prepared_db.connection) as cursor:
            cursor.execute("SELECT %s::int", [1], prepare=True)
            prepared = cursor.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert prepared[0] == 1
    finally:
        prepared_db.close()
