"""A durable backend for Django's tasks framework (``django.tasks``, or the ``django-tasks``
package on Django 5.2)::

    TASKS = {"default": {"BACKEND": "django_conductor.backends.ConductorBackend"}}
"""

from .backend import ConductorBackend

__all__ = ["ConductorBackend"]
