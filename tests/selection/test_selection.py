"""The selection rules themselves (pure), and the catalogue's concurrent ``/api/show`` cache."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ollamakit.domain import ModelInfo
from ollamakit.selection import (
    AsyncCatalog,
    Catalog,
    SelectionError,
    kind_of,
    pick,
    resolve,
    select,
    think_plan,
)

NAMES = ["llama3.2:3b", "llama3.2:latest", "qwen3:8b", "qwen3:32b", "Mistral:latest"]
CHAT = frozenset({"completion"})
THINK = frozenset({"completion", "thinking"})


def test_exact_then_latest_then_case_then_unique_prefix() -> None:
    assert resolve("llama3.2", NAMES).name == "llama3.2:latest"  # :latest before the prefix
    assert resolve("llama3.2:3b", NAMES).expanded is False
    assert resolve("mistral", NAMES).name == "Mistral:latest"
    assert resolve("qwen3:3", NAMES).expanded is True  # qwen3:32b, the only one
    assert resolve("qwen3", NAMES) is None  # two fit: ambiguous
    assert resolve("", NAMES) is None


def test_pick_with_globs_exclude_and_unknown_names() -> None:
    listed = [ModelInfo(n, 2 << 30) for n in NAMES]
    infos, explicit, expanded, excluded = pick(["qwen*", "mistral"], listed, ["*:32b"])
    assert [i.name for i in infos] == ["qwen3:8b", "Mistral:latest"]
    assert explicit == [False, True] and expanded == ()
    assert [s.name for s in excluded] == ["qwen3:32b"]
    with pytest.raises(SelectionError) as caught:
        pick(["qwen4"], listed)
    assert "qwen3:8b" in (caught.value.hint or "") and "ollama pull qwen4" in (
        caught.value.hint or ""
    )


def test_kinds_from_capabilities_and_from_the_list_alone() -> None:
    assert kind_of(ModelInfo("x:1b", 2 << 30, capabilities=frozenset({"embedding"}))) == "embedding"
    assert kind_of(ModelInfo("bge-m3:latest", 2 << 30, family="bert")) == "embedding"
    assert kind_of(ModelInfo("kimi-k2:1t-cloud", 340)) == "cloud"
    assert kind_of(ModelInfo("tiny:latest", 340)) == "chat"  # small, but not a cloud tag
    assert kind_of(ModelInfo("m", 2 << 30, remote=True)) == "cloud"


def test_the_sync_catalogue_asks_each_model_once_in_parallel() -> None:
    asked: list[str] = []
    lock = threading.Lock()

    def describe(name: str) -> ModelInfo:
        with lock:
            asked.append(name)
        return ModelInfo(name, capabilities=THINK if "r1" in name else CHAT)

    catalog = Catalog(describe)
    listed = [ModelInfo(f"m{i}:1b", 2 << 30) for i in range(10)] + [ModelInfo("r1:1b", 2 << 30)]
    first = select(listed, [], [], catalog)
    again = select(listed, [], [], catalog)
    assert sorted(asked) == sorted(m.name for m in listed)  # once each, not twice
    assert first == again and next(m for m in first.models if m.name == "r1:1b").can_think


def test_the_async_catalogue_runs_describes_concurrently() -> None:
    running, peak = 0, 0

    async def describe(name: str) -> ModelInfo:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)  # yield: the others start before this one ends
        running -= 1
        return ModelInfo(name, capabilities=CHAT)

    listed = [ModelInfo(f"m{i}:1b") for i in range(6)]
    done = asyncio.run(AsyncCatalog(describe).complete(listed))
    assert peak > 1 and all(m.capabilities == CHAT for m in done)


def test_think_plan_per_model() -> None:
    infos = [
        ModelInfo("gpt-oss:20b", family="gptoss", capabilities=THINK),
        ModelInfo("qwen3:8b", capabilities=THINK),
        ModelInfo("llama3.2:3b", capabilities=CHAT),
    ]
    values, notices = think_plan(infos, "off", "0.33.0")
    assert values == {"gpt-oss:20b": "low", "qwen3:8b": False, "llama3.2:3b": False}
    assert len(notices) == 1 and "gpt-oss:20b" in notices[0]
    assert think_plan(infos, "high", "0.18.0")[0]["qwen3:8b"] == "high"
    with pytest.raises(SelectionError, match=r"0\.18"):
        think_plan(infos, "high", "0.17.9")
    assert think_plan(infos[:1], "high", "0.12.0")[0] == {"gpt-oss:20b": "high"}
    with pytest.raises(SelectionError, match=r"0\.22"):
        think_plan(infos[:1], "max", "0.21.0")
    assert think_plan(infos, "max", None)[0]["qwen3:8b"] == "max"  # unknown version: not gated
