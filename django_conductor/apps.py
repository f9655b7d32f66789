from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules

from . import checks  # noqa: F401  (registers the system checks)


class ConductorConfig(AppConfig):
    name = "django_conductor"
    label = "django_conductor"
    verbose_name = "Conductor"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        autodiscover_modules("tasks")
