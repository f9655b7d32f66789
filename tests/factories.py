import factory

from django_conductor.models import Execution, FailedExecution, Step


class ExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Execution

    task_name = "echo"
    queue = "default"
    payload = factory.Sequence(lambda n: {"n": n})


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    execution = factory.SubFactory(ExecutionFactory)
    name = factory.Sequence(lambda n: f"step-{n}")
    result = factory.Sequence(lambda n: n)


class FailedExecutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FailedExecution

    execution = factory.SubFactory(ExecutionFactory, status="failed", attempts=3)
    task_name = factory.SelfAttribute("execution.task_name")
    error = "ValueError: boom"
    traceback = "Traceback (most recent call last):\nValueError: boom"
    attempts = 3
