"""report.toml: both languages for every entry, the same placeholders, every key used exists."""

from __future__ import annotations

import re
import string
from pathlib import Path

import ollamakit
from ollamakit.i18n import catalogue

SOURCES = [
    Path(ollamakit.__file__).parent / "store.py",
    *sorted((Path(ollamakit.__file__).parent / "report").glob("*.py")),
]


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_entry_has_both_languages_with_the_same_placeholders() -> None:
    entries = catalogue("report")
    assert entries
    for name, entry in entries.items():
        assert set(entry) == {"en", "zh-TW"}, name
        assert entry["en"].strip() and entry["zh-TW"].strip(), name
        assert placeholders(entry["en"]) == placeholders(entry["zh-TW"]), name


def test_every_key_the_code_uses_exists() -> None:
    entries = catalogue("report")
    used: set[str] = set()
    for source in SOURCES:
        used |= set(re.findall(r"""["']report\.([a-z0-9_]+)["']""", source.read_text("utf-8")))
    assert used, "no keys found: the pattern is wrong"
    assert used - set(entries) == set()
    statuses = {f"status_{s}" for s in ("running", "complete", "interrupted", "failed")}
    assert statuses <= set(entries)
