"""The fault registry: one class per fault, and everything else generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import ollama
import pytest

from ollamakit.i18n import catalogue
from ollamakit.sim import Fault, FaultKind
from ollamakit.sim.faults import REGISTRY, FaultBehaviour, fault_help, fault_table

from .conftest import faulty, quick_config, raw

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"


def test_every_kind_has_one_registered_class_and_help_text() -> None:
    assert list(REGISTRY) == list(FaultKind)
    entries = catalogue("sim")
    for kind, cls in REGISTRY.items():
        assert issubclass(cls, FaultBehaviour) and cls.kind is kind
        assert f"fault_{kind.value}" in entries
    help_text = fault_help()
    assert all(cls.usage() in help_text for cls in REGISTRY.values())


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_the_docs_fault_table_is_the_registry(lang: str) -> None:
    """docs/simulator.md holds fault_table(lang) verbatim in each language's section; after
    adding a fault, paste ``python -c 'from ollamakit.sim.faults import fault_table;
    print(fault_table("en"))'`` (and "zh-TW") there."""
    text = DOCS.read_text("utf-8")
    english, chinese = text.split('<a id="繁體中文"></a>', 1)
    section = english if lang == "en" else chinese
    assert fault_table(lang) in section


def test_parsing_knows_every_registered_kind() -> None:
    for cls in REGISTRY.values():
        text = cls.usage().replace("N", "3").replace("MS", "5").replace("CODE", "500")
        assert Fault.parse(text).kind is cls.kind


def test_repeat_guard_ends_the_stream_cleanly_without_done(start_sim) -> None:
    sim = start_sim(quick_config(faulty("rep:1b", Fault(FaultKind.REPEAT_GUARD, 4))))
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "rep:1b", "prompt": "x"})
    assert reply.status == 200 and reply.complete  # the terminating chunk is there
    assert len(reply.lines) == 4
    assert not any(line.get("done") or "error" in line for line in reply.lines)
    (record,) = sim.requests()
    assert record.outcome == "no_done" and record.done_reason is None

    body = {"model": "rep:1b", "messages": [{"role": "user", "content": "x"}], "stream": False}
    whole = raw(sim.url, "POST", "/api/chat", body=body)
    assert whole.status == 200
    data = whole.lines[0]
    assert data["done"] is False and data["message"]["content"]
    assert "eval_count" not in data

    # ollama-python just stops iterating: four chunks, no error.
    with ollama.Client(host=sim.url) as client:
        parts = list(client.generate("rep:1b", "x", stream=True))
    assert len(parts) == 4 and not any(p.done for p in parts)


def test_model_table_and_help_show_registered_usage() -> None:
    import argparse

    from ollamakit.sim.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = re.sub(r"\s+", " ", parser.format_help())
    assert "repeat_guard=N" in help_text and "slow_headers_ms=MS" in help_text
