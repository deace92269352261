"""zh-TW: the run settings' chips in the HTML report and the Markdown header are translated
(issue 11: "category names and HTML chips stay English"); the picker's categories are tested
in ``test_ux_prompts.py``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ollamakit.sim import SimConfig
from tests.support import assert_no_traceback, run_program

from .conftest import FAST


def _run(url: str, tmp_path: Path, language: str) -> tuple[str, str]:
    html, md = tmp_path / f"{language}.html", tmp_path / f"{language}.md"
    result = run_program(
        [
            *("--lang", language, "bench", "--base-url", url, "--auto", "--runs", "1"),
            *("--warmup", "0", "--prompt", "greeting", "--no-save", "--num-predict", "4"),
            *("--output", str(html), "--output", str(md)),
        ]
    )
    assert_no_traceback(result)
    assert result.returncode == 0, result.output
    return html.read_text("utf-8"), md.read_text("utf-8")


def test_html_chips_and_markdown_settings_in_zh_tw(start_sim: Any, tmp_path: Path) -> None:
    sim = start_sim(SimConfig(models=(FAST,)))
    page, md = _run(sim.url, tmp_path, "zh-TW")
    chips = re.findall(r"<code>([^<]*)</code>", page.split('<p class="config">', 1)[1])
    assert "測量次數 1" in chips and "暖機 0" in chips and "測試組 default" in chips
    assert not [c for c in chips if re.match(r"(runs|warmup|suite|seed) ", c)]
    assert "`測量次數` 1" in md

    page_en, md_en = _run(sim.url, tmp_path, "en")
    assert "<code>runs 1</code>" in page_en and "`runs` 1" in md_en
