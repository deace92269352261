"""The wording of the catalogues: Chinese punctuation, one term per concept, whole-sentence hints.

These read every ``i18n/messages/*.toml`` file, so a new message is held to the same rules:

* zh-TW: no half-width space after (or before) full-width punctuation — ``。 下一句`` reads as
  a stray gap;
* zh-TW: one term per concept (:data:`GLOSSARY`): the same thing is never 提示詞 in one table
  and 提示 in the next;
* hints and fixes: every line is whole sentences, because each line of a hint gets its own
  ``→`` (a sentence split over two lines reads as two pieces of advice), and a line indented
  by four spaces is a command to copy, which the renderers never wrap.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Final

import pytest

from ollamakit.i18n import LANGUAGES

#: concept -> (the term zh-TW uses, patterns that must not appear instead)
GLOSSARY: Final = {
    "prompt": ("提示詞", (r"提示(?!詞)",)),
    "time to first token (TTFT)": ("首字延遲", (r"首個 ?token", r"第一個 ?token", r"TTFT")),
    "authentication": ("身分", (r"身份",)),
    "timeout": ("逾時", (r"超時",)),
    "server": ("伺服器", (r"服務器",)),
    "simulator": ("模擬器", (r"模擬程式",)),
}

FULL_WIDTH: Final = "。，、：；！？（）"  # not 「」: a quoted " #" is a literal space
COMMAND_INDENT: Final = "    "
SENTENCE_END: Final = tuple(".?!:。？！：")


def _catalogues() -> dict[str, dict[str, dict[str, str]]]:
    folder = resources.files("ollamakit.i18n") / "messages"
    return {
        entry.name: tomllib.loads(entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    }


def _messages(language: str) -> list[tuple[str, str]]:
    return [
        (f"{file.removesuffix('.toml')}.{key}", entry[language])
        for file, catalogue in sorted(_catalogues().items())
        for key, entry in catalogue.items()
        if language in entry
    ]


def test_the_catalogues_are_read() -> None:
    assert len(_messages("zh-TW")) > 300
    assert LANGUAGES == ("en", "zh-TW")


def test_no_half_width_space_around_full_width_punctuation() -> None:
    after = re.compile(f"[{FULL_WIDTH}] +(?=\\S)")
    before = re.compile(f"(?<=\\S) +[{FULL_WIDTH}]")
    bad = [
        (key, text)
        for key, text in _messages("zh-TW")
        for line in text.splitlines()
        if not line.startswith(COMMAND_INDENT) and (after.search(line) or before.search(line))
    ]
    assert bad == []


@pytest.mark.parametrize("concept", sorted(GLOSSARY))
def test_one_term_per_concept(concept: str) -> None:
    term, others = GLOSSARY[concept]
    pattern = re.compile("|".join(others))
    bad = [(key, text) for key, text in _messages("zh-TW") if pattern.search(text)]
    assert bad == [], f"{concept}: write {term}"
    assert any(term in text for _, text in _messages("zh-TW")), term  # the term is in use


def test_the_rules_catch_what_they_are_for() -> None:
    after = re.compile(f"[{FULL_WIDTH}] +(?=\\S)")
    assert after.search("第一句。 第二句")
    assert not after.search("第一句。第二句")
    prompt = re.compile("|".join(GLOSSARY["prompt"][1]))
    assert prompt.search("各模型與提示的中位數") and not prompt.search("提示詞")


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_every_hint_line_is_whole_sentences(language: str) -> None:
    bad = []
    for key, text in _messages(language):
        name = key.split(".", 1)[1]
        if "\n" not in text or not name.endswith(("_hint", "_fix")):
            continue
        for line in text.splitlines():
            if line.startswith(COMMAND_INDENT) or not line.strip():
                continue
            # a line may end in a placeholder: a sentence of its own (``{auth_advice}``)
            if not line.rstrip().endswith((*SENTENCE_END, "}")):
                bad.append((key, line))
    assert bad == []
