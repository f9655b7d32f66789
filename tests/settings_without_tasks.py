"""The test settings without the app that defines tasks, as in a project whose tasks live in
a module that is not called ``tasks``: its worker must say it can run nothing."""

from .settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "tests.testapp"]  # noqa: F405
