"""Settings for the fault-injection suite's worker processes and runner. The database is the
suite's own throwaway cluster, named by the runner through the environment; nothing here
reaches the default embedded server or the machine's PostgreSQL."""

import os

SECRET_KEY = "chaos-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("CONDUCTOR_CHAOS_DB_NAME", "conductor_chaos"),
        "USER": "postgres",
        # A socket directory: the cluster listens on no TCP port at all.
        "HOST": os.environ.get("CONDUCTOR_CHAOS_DB_HOST", "/nonexistent-chaos-cluster"),
        "PORT": os.environ.get("CONDUCTOR_CHAOS_DB_PORT", "5432"),
    }
}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django_conductor",
    "tests.chaos",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
CONDUCTOR_LEASE = float(os.environ.get("CONDUCTOR_CHAOS_LEASE", "3"))
CONDUCTOR_HEARTBEAT_INTERVAL = float(os.environ.get("CONDUCTOR_CHAOS_HEARTBEAT_INTERVAL", "0.5"))
CONDUCTOR_SHUTDOWN_GRACE = float(os.environ.get("CONDUCTOR_CHAOS_SHUTDOWN_GRACE", "8"))
CONDUCTOR_POLL_INTERVAL = 1
