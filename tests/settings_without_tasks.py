"""The test settings without the app that defines tasks, as in a project whose tasks live in
a module that is not called ``tasks``: its worker must say it can run nothing."""

from .settings import *  # noqa: F403

# Nor the tasks framework's app (on Django 5.2), so that the only app searched is ours.
LEFT_OUT = ("tests.testapp", "django_tasks")
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in LEFT_OUT]  # noqa: F405
