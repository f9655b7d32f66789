"""CONDUCTOR_LISTEN_DATABASE: where the LISTEN connections of workers and ``wait()`` go.
Unset, where the default database is; a dict replaces only the keys it gives; an alias
listens through that database."""

import pytest
from django.db import connection, connections

from django_conductor.store.base import FINISHED_CHANNEL
from django_conductor.store.notify import connect_listener

pytestmark = pytest.mark.django_db

TAGGED = {"OPTIONS": {"application_name": "conductor-listen"}}


def where(listener):
    """The database, application name and port of a LISTEN connection."""
    row = listener.execute("SELECT current_database(), current_setting('application_name')")
    return (*row.fetchone(), listener.info.port)


def test_unset_listeners_connect_where_the_default_database_is():
    port = connection.settings_dict["PORT"]
    with connect_listener(FINISHED_CHANNEL) as listener:
        name, _, at = where(listener)
    assert name == connection.settings_dict["NAME"]
    assert not port or at == int(port)


def test_a_dict_replaces_only_the_keys_it_gives(settings):
    settings.CONDUCTOR_LISTEN_DATABASE = TAGGED
    with connect_listener(FINISHED_CHANNEL) as listener:
        name, application, _ = where(listener)
        listening = listener.execute("SELECT pg_listening_channels()").fetchall()
    assert (name, application) == (connection.settings_dict["NAME"], "conductor-listen")
    assert listening == [(FINISHED_CHANNEL,)]


@pytest.fixture
def listen_alias(monkeypatch):
    """A second DATABASES alias for the same database, tagged so that it can be told apart."""
    monkeypatch.setitem(connections.settings, "listen", {**connection.settings_dict, **TAGGED})
    yield "listen"
    connections["listen"].close()
    del connections["listen"]


def test_an_alias_listens_through_that_database(settings, listen_alias):
    settings.CONDUCTOR_LISTEN_DATABASE = listen_alias
    with connect_listener(FINISHED_CHANNEL) as listener:
        assert where(listener)[:2] == (connection.settings_dict["NAME"], "conductor-listen")
