"""report.toml: every key the code uses exists.

Both languages and the same placeholders for every entry: the one parametrized catalogue test
in ``tests/test_cli.py`` (every catalogue).
"""

from __future__ import annotations

import re
from pathlib import Path

import ollamakit
from ollamakit.i18n import catalogue

SOURCES = [
    Path(ollamakit.__file__).parent / "store.py",
    *sorted((Path(ollamakit.__file__).parent / "report").glob("*.py")),
]


def test_every_key_the_code_uses_exists() -> None:
    entries = catalogue("report")
    used: set[str] = set()
    for source in SOURCES:
        used |= set(re.findall(r"""["']report\.([a-z0-9_]+)["']""", source.read_text("utf-8")))
    assert used, "no keys found: the pattern is wrong"
    assert used - set(entries) == set()
    statuses = {f"status_{s}" for s in ("running", "complete", "interrupted", "failed")}
    assert statuses <= set(entries)
