"""The fork server may preload ollamakit only while no module reads its world at import time.

``tests/forkserver.py`` imports ollamakit's command modules once and forks a child per command.
That is a faithful start only if importing a module reads nothing a real start would read
differently: the environment, the arguments, the locale, the working directory, the clock.
This test parses every module and fails on such a read in code that runs at import (module
and class bodies, default argument values, decorators), so a future module-level
``LANG = os.environ.get(...)`` is caught here instead of making the CLI tests lie.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ollamakit"

#: Values that differ between the fork server and a fresh start (any read counts).
WORLD_VALUES = {("os", "environ"), ("sys", "argv"), ("sys", "stdin"), ("sys", "stdout")}
#: Functions whose answer differs (a call counts; passing the function as a default does not).
WORLD_CALLS = {
    ("os", "getenv"),
    ("os", "getcwd"),
    ("os", "getpid"),
    ("locale", "getlocale"),
    ("locale", "getpreferredencoding"),
    ("locale", "setlocale"),
    ("time", "time"),
    ("time", "monotonic"),
    ("time", "perf_counter_ns"),
    ("Path", "cwd"),
    ("Path", "home"),
}


def import_time_nodes(tree: ast.Module) -> list[ast.AST]:
    """The parts of a module that run when it is imported (not function bodies)."""
    todo: list[ast.AST] = list(tree.body)
    found: list[ast.AST] = []
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            # The body runs later; decorators and defaults run now.
            todo.extend(node.args.defaults)
            todo.extend(d for d in node.args.kw_defaults if d is not None)
            if not isinstance(node, ast.Lambda):
                todo.extend(node.decorator_list)
            continue
        found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def world_reads(source: str) -> list[str]:
    """``module.attribute`` reads of :data:`WORLD` that run at import.

    >>> world_reads("import os\\nHOME = os.environ.get('HOME')\\n")
    ['os.environ (line 2)']
    >>> world_reads("import time\\ndef f(clock=time.monotonic):\\n    return clock()\\n")
    []
    >>> world_reads("import time\\nSTARTED = time.monotonic()\\n")
    ['time.monotonic (line 2)']
    >>> world_reads("import os\\ndef home():\\n    return os.environ['HOME']\\n")
    []
    """
    reads = []
    for node in import_time_nodes(ast.parse(source)):
        called = isinstance(node, ast.Call)
        target = node.func if isinstance(node, ast.Call) else node
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            pair = (target.value.id, target.attr)
            if pair in WORLD_VALUES or (called and pair in WORLD_CALLS):
                reads.append(f"{pair[0]}.{pair[1]} (line {target.lineno})")
    return sorted(reads)


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_reads_the_world_at_import(path: Path) -> None:
    if path.name == "__main__.py" or path.name == "locust_user.py":
        return  # run as programs (python -m / locust -f), never preloaded
    assert world_reads(path.read_text("utf-8")) == [], (
        f"{path.relative_to(SRC)} reads the environment/arguments/locale/clock at import: move "
        "it into a function, or stop preloading the module in tests/forkserver.py"
    )
