"""The no-op task of the django-tasks-db side of the comparison."""

try:
    from django.tasks import task
except ImportError:  # before Django 6: the django-tasks backport
    from django_tasks import task


@task()
def noop(n=None):
    return None
