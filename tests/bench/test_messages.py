"""bench.toml: no missing or unused key.

Both languages and the same placeholders for every entry: the one parametrized catalogue test
in ``tests/test_cli.py`` (every catalogue).
"""

from __future__ import annotations

import re
from pathlib import Path

import ollamakit
from ollamakit.i18n import catalogue

SOURCES = sorted((Path(ollamakit.__file__).parent / "bench").glob("*.py"))


def test_keys_used_and_defined_match() -> None:
    used: set[str] = set()
    for source in SOURCES:
        used |= set(re.findall(r"""["']bench\.([a-z0-9_]+)["']""", source.read_text("utf-8")))
    assert used, "no keys found: the pattern is wrong"
    defined = set(catalogue("bench"))
    assert used - defined == set(), "used but not defined"
    assert defined - used == set(), "defined but never used"
