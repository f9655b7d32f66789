from django.apps import AppConfig


class BenchappConfig(AppConfig):
    name = "benchmarks.benchapp"
    label = "benchapp"

    def ready(self) -> None:
        from benchmarks import instrumented

        instrumented.install()  # the telemetry workload's, when its environment asks
