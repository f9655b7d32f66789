"""OpenTelemetry for executions (``otel``: the guarded import, spans, instruments;
``producing``: the spans of invokes and emits). Off unless ``opentelemetry-api`` is installed
and a provider is set; the Django signals are in ``django_conductor.signals``."""

from .otel import configure

__all__ = ["configure"]
