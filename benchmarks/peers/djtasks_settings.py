"""Django settings for the django-tasks-db side of the comparison, on the peer's own
database (given by the benchmark in ``BENCH_PEER_DATABASE``, as Django's DATABASES entry)."""

import json
import os
from importlib.util import find_spec

SECRET_KEY = "benchmarks-only"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": json.loads(os.environ["BENCH_PEER_DATABASE"])}
# Django 6 has django.tasks built in; before it, the django-tasks backport provides it.
INSTALLED_APPS = ([] if find_spec("django.tasks") else ["django_tasks"]) + ["django_tasks_db"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
