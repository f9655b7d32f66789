"""An example Django project that runs durable tasks with django_conductor."""
