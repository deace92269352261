"""bench.toml: both languages for every entry, the same placeholders, no missing or unused key."""

from __future__ import annotations

import re
import string
from pathlib import Path

import ollamakit
from ollamakit.i18n import catalogue

SOURCES = sorted((Path(ollamakit.__file__).parent / "bench").glob("*.py"))


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_entry_has_both_languages_with_the_same_placeholders() -> None:
    entries = catalogue("bench")
    assert entries
    for name, entry in entries.items():
        assert set(entry) == {"en", "zh-TW"}, name
        assert entry["en"].strip() and entry["zh-TW"].strip(), name
        assert placeholders(entry["en"]) == placeholders(entry["zh-TW"]), name


def test_keys_used_and_defined_match() -> None:
    used: set[str] = set()
    for source in SOURCES:
        used |= set(re.findall(r"""["']bench\.([a-z0-9_]+)["']""", source.read_text("utf-8")))
    assert used, "no keys found: the pattern is wrong"
    defined = set(catalogue("bench"))
    assert used - defined == set(), "used but not defined"
    assert defined - used == set(), "defined but never used"
