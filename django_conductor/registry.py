"""The process-wide map of task names to tasks, filled by ``@task`` at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .exceptions import UnknownTask

if TYPE_CHECKING:
    from .definition import Task


class TaskRegistry:
    """Known tasks by name; duplicates are kept for the system checks to report."""

    def __init__(self) -> None:
        self.tasks: dict[str, Task] = {}
        self.duplicates: list[Task] = []

    def register(self, task: Task) -> None:
        existing = self.tasks.get(task.name)
        if existing is not None and existing.func is not task.func:
            self.duplicates.append(task)
            return
        self.tasks[task.name] = task

    def unregister(self, name: str) -> None:
        self.tasks.pop(name, None)
        self.duplicates = [t for t in self.duplicates if t.name != name]

    def get(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(
                f"No task is registered as {name!r}. Known tasks: "
                f"{', '.join(sorted(self.tasks)) or 'none'}. Is the module that defines it "
                "an installed app's tasks module?"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.tasks

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.tasks.values()))


registry = TaskRegistry()
