import json
import os

import django

from django_conductor.devdb import database_config

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
# A worker subprocess of tests/test_window_runs.py runs in the zone its test chooses.
TIME_ZONE = os.environ.get("CONDUCTOR_TEST_TIME_ZONE", "UTC")
DATABASES = {"default": database_config()}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_conductor",
    "tests.testapp",
]
# Django's tasks framework runs on our backend (tests/test_backend.py); on Django 5.2 it is
# the django-tasks package, an app (for its system checks and signals).
TASKS = {"default": {"BACKEND": "django_conductor.backends.ConductorBackend"}}
if django.VERSION < (6, 0):
    INSTALLED_APPS.append("django_tasks")
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Worker subprocesses in tests/test_worker_process.py shorten these through the environment.
CONDUCTOR_LEASE = float(os.environ.get("CONDUCTOR_TEST_LEASE", "30"))
CONDUCTOR_HEARTBEAT_INTERVAL = float(os.environ.get("CONDUCTOR_TEST_HEARTBEAT_INTERVAL", "1"))
CONDUCTOR_SHUTDOWN_GRACE = float(os.environ.get("CONDUCTOR_TEST_SHUTDOWN_GRACE", "30"))
CONDUCTOR_POLL_INTERVAL = float(os.environ.get("CONDUCTOR_TEST_POLL_INTERVAL", "1"))
# The worker of tests/test_pgbouncer.py reaches the database through PgBouncer and LISTENs
# on the server itself.
if "CONDUCTOR_TEST_LISTEN_DATABASE" in os.environ:
    CONDUCTOR_LISTEN_DATABASE = json.loads(os.environ["CONDUCTOR_TEST_LISTEN_DATABASE"])
# Pruning is off in tests unless one turns it on for its worker processes.
CONDUCTOR_PRUNE_INTERVAL = (
    float(os.environ["CONDUCTOR_TEST_PRUNE_INTERVAL"])
    if "CONDUCTOR_TEST_PRUNE_INTERVAL" in os.environ
    else None
)
