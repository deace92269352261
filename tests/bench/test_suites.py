"""Suites: the default one, run markers, and file validation with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ollamakit.bench.suites import (
    default_suite,
    load_suite,
    long_document,
    marked,
    resolve_suite,
)
from ollamakit.errors import UsageError


def test_default_suite_covers_the_required_categories() -> None:
    suite = default_suite()
    assert set(suite.categories) >= {"greeting", "coding", "reasoning", "long-summary", "zh-tw"}
    options = suite.options()
    assert options["temperature"] == 0
    assert options["seed"] == 42
    assert options["num_predict"] > 0
    zh = next(p for p in suite.prompts if p.category == "zh-tw")
    assert "繁體中文" in zh.text
    ids = [p.id for p in suite.prompts]
    assert len(ids) == len(set(ids))


def test_long_prompt_is_about_2k_tokens_and_deterministic() -> None:
    doc = long_document()
    assert doc == long_document()
    words = len(doc.split())
    # ≈1.3 tokens per English word (4 characters per token gives a similar figure)
    assert 1_700 <= words * 1.3 <= 2_300
    assert 1_700 <= len(doc) / 4 <= 2_600


def test_markers_make_every_prompt_unique_at_its_start() -> None:
    prompt = default_suite().prompts[0]
    a = marked(prompt, "bench x #1")[0]["content"]
    b = marked(prompt, "bench x #2")[0]["content"]
    assert a != b
    assert a[:10] != b[:12][:10] or a.split("]")[0] != b.split("]")[0]


def test_overrides_and_selection() -> None:
    suite = default_suite().with_overrides(num_predict=16, seed=7).only(["coding"])
    assert [p.id for p in suite.prompts] == ["coding"]
    assert suite.options() == {"temperature": 0.0, "seed": 7, "num_predict": 16}


def test_toml_and_yaml_files(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text(
        'name = "mine"\nnum_predict = 32\n[[prompts]]\nid = "a"\nprompt = "Hi"\n'
        'system = "Be brief."\ncategory = "greeting"\n',
        encoding="utf-8",
    )
    suite = resolve_suite(str(toml))
    assert suite.name == "mine"
    assert suite.num_predict == 32
    assert suite.prompts[0].system == "Be brief."
    yml = tmp_path / "s.yaml"
    yml.write_text("prompts:\n  - id: b\n    prompt: 你好\n", encoding="utf-8")
    suite = load_suite(yml)
    assert suite.name == "s"
    assert suite.prompts[0].text == "你好"
    assert suite.prompts[0].category == "custom"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("", "prompts", "missing"),
        ("prompts = []", "prompts", "non-empty list"),
        ('[[prompts]]\nprompt = "x"', "prompts[0].id", "missing"),
        ('[[prompts]]\nid = "a"', "prompts[0].prompt", "missing"),
        ('[[prompts]]\nid = "a"\nprompt = "  "', "prompts[0].prompt", "empty"),
        ('[[prompts]]\nid = "a b"\nprompt = "x"', "prompts[0].id", "not a valid id"),
        ('[[prompts]]\nid = 3\nprompt = "x"', "prompts[0].id", "string"),
        (
            '[[prompts]]\nid = "a"\nprompt = "x"\n[[prompts]]\nid = "a"\nprompt = "y"',
            "prompts[1].id",
            "twice",
        ),
        ('[[prompts]]\nid = "a"\nprompt = "x"\ncolour = 1', "prompts[0].colour", "unknown key"),
        ('seed = "x"\n[[prompts]]\nid = "a"\nprompt = "x"', "seed", "integer"),
        ('temperature = -1\n[[prompts]]\nid = "a"\nprompt = "x"', "temperature", "at least 0"),
        ('num_predict = 0\n[[prompts]]\nid = "a"\nprompt = "x"', "num_predict", "-1"),
        ("prompts = [", "-", "cannot be parsed"),
        ("promts = 1", "promts", "unknown key"),
    ],
)
def test_invalid_files_name_file_field_and_problem(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_suite(path)
    message = info.value.message
    assert str(path) in message
    assert f"field {field}:" in message
    assert problem in message


def test_unknown_suite_name_and_extension(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a built-in suite"):
        resolve_suite("nope")
    bad = tmp_path / "s.json"
    bad.write_text("{}", encoding="utf-8")
    with pytest.raises(UsageError, match=r"\.toml, \.yaml or \.yml"):
        resolve_suite(str(bad))
