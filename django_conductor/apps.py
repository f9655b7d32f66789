from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

from . import checks  # noqa: F401  (registers the system checks)
from .triggers.rows import sync


class ConductorConfig(AppConfig):
    name = "django_conductor"
    label = "django_conductor"
    verbose_name = "Conductor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        autodiscover_modules("tasks")
        # Row triggers follow the code on every migrate, once the tables are there.
        post_migrate.connect(install_row_triggers, sender=self)


def install_row_triggers(using: str = "default", **kwargs: Any) -> None:
    sync(using)
