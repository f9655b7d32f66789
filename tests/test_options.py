"""Option rules are said once: the decorator, invoke and the worker command give the same
words for the same bad value."""

import argparse

import pytest

from django_conductor import invoke
from django_conductor.definition import Task
from django_conductor.management.commands.conductor_worker import queue_name
from django_conductor.models import Execution
from django_conductor.options import queue_problem


def handler(event, ctx):
    return None


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "   ", "q" * 101])
def test_a_bad_queue_gets_the_same_words_from_the_decorator_invoke_and_the_command(bad):
    problem = queue_problem(bad)
    assert problem is not None and repr(bad) in problem
    assert problem in Task(handler, "options-probe", queue=bad).errors
    with pytest.raises(ValueError) as raised:
        invoke("echo", {}, queue=bad)
    assert str(raised.value) == problem
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        queue_name(bad)
    assert str(refused.value) == problem
    assert Execution.objects.count() == 0
