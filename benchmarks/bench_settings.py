"""Settings for the benchmark: django_conductor at its defaults on a database of its own.

The server is ``DATABASE_URL`` when set, otherwise the embedded PostgreSQL; the database is
``conductor_bench`` (``CONDUCTOR_BENCH_DATABASE`` overrides), which ``run.py`` drops and
creates afresh on every run.
"""

import os

from django_conductor.devdb import database_config

DATABASE_NAME = os.environ.get("CONDUCTOR_BENCH_DATABASE", "conductor_bench")

SECRET_KEY = "benchmarks-only"  # noqa: S105
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": {**database_config(), "NAME": DATABASE_NAME}}
# ``run.py --prepare``: psycopg prepares a statement on its first use (Django's default, None,
# prepares nothing, for the sake of connection poolers).
if os.environ.get("CONDUCTOR_BENCH_PREPARE"):
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "prepare_threshold": 1,
    }
INSTALLED_APPS = ["django_conductor", "benchmarks.benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The workers' pruning duty is off: the prune workload measures pruning on its own, and the
# other workloads' finished rows must stay as they put them.
CONDUCTOR_PRUNE_INTERVAL = None
