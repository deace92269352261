"""``--ollama-version`` picks a behaviour profile: each version-dependent behaviour under at
least two versions, over real HTTP."""

from __future__ import annotations

import ollama
import pytest

from ollamakit.sim import ModelSpec, SimConfig
from ollamakit.sim.profiles import DEFAULT_VERSION

from .conftest import QUICK, THINKER, quick_config, raw


def test_the_default_is_the_newest_profile() -> None:
    assert DEFAULT_VERSION == "0.33.0" and SimConfig().version == "0.33.0"


def test_unset_think_before_0_12_5_puts_the_reasoning_in_the_content(start_sim) -> None:
    old = start_sim(quick_config(version="0.12.4"))
    new = start_sim(quick_config(version="0.12.5"))
    body = {"model": "thinker:1b", "prompt": "Why?", "stream": False}
    before = raw(old.url, "POST", "/api/generate", body=body).lines[0]
    assert "thinking" not in before
    assert before["response"].startswith("<think>") and "</think>\n\n" in before["response"]
    assert before["eval_count"] == THINKER.thinking_tokens + THINKER.reply_tokens + 2
    after = raw(new.url, "POST", "/api/generate", body=body).lines[0]
    assert "<think>" not in after["response"] and after["thinking"]
    # Streaming in 0.12.4: content chunks only, the first one the opening tag.
    lines = raw(old.url, "POST", "/api/generate", body={**body, "stream": True}).lines
    assert lines[0]["response"] == "<think>" and not any("thinking" in line for line in lines)
    # An explicit think: true always gave the separate field.
    explicit = raw(old.url, "POST", "/api/generate", body={**body, "think": True}).lines[0]
    assert explicit["thinking"] and "<think>" not in explicit["response"]


@pytest.mark.parametrize(
    ("version", "status", "error"),
    [
        ("0.17.0", 400, 'think value "high" is not supported for this model'),
        ("0.18.0", 200, None),
    ],
)
def test_string_think_levels_on_a_non_gpt_oss_model(
    start_sim, version: str, status: int, error: str | None
) -> None:
    sim = start_sim(quick_config(version=version))
    body = {"model": "thinker:1b", "prompt": "x", "think": "high", "stream": False}
    reply = raw(sim.url, "POST", "/api/generate", body=body)
    assert reply.status == status
    if error:
        assert reply.lines[0] == {"error": error}


@pytest.mark.parametrize(
    ("version", "max_ok", "listed"),
    [
        ("0.21.0", False, '"high", "medium", "low"'),
        ("0.22.0", True, '"high", "medium", "low", "max"'),
    ],
)
def test_think_max_and_the_type_error_text(
    start_sim, version: str, max_ok: bool, listed: str
) -> None:
    sim = start_sim(quick_config(version=version))
    body = {"model": "thinker:1b", "prompt": "x", "think": "max", "stream": False}
    reply = raw(sim.url, "POST", "/api/generate", body=body)
    if max_ok:
        assert reply.status == 200
    else:
        assert reply.status == 400
        assert reply.lines[0] == {
            "error": f'invalid think value: "max" (must be {listed}, true, or false)'
        }
    wrong = raw(sim.url, "POST", "/api/generate", body={"model": "thinker:1b", "think": 3})
    assert wrong.status == 400
    assert wrong.lines[0] == {
        "error": f"think must be a boolean or string ({listed}, true, or false)"
    }


@pytest.mark.parametrize(
    ("version", "chat", "generate"),
    [
        ("0.12.6", (400, "model is required"), (404, "model 'bad name!' not found")),
        ("0.18.0", (400, "invalid model name"), (400, "invalid model name")),
    ],
)
def test_invalid_model_name_texts(start_sim, version, chat, generate) -> None:
    sim = start_sim(quick_config(version=version))
    c = raw(sim.url, "POST", "/api/chat", body={"model": "bad name!", "messages": []})
    g = raw(sim.url, "POST", "/api/generate", body={"model": "bad name!", "prompt": "x"})
    assert (c.status, c.lines[0]["error"]) == chat
    assert (g.status, g.lines[0]["error"]) == generate
    # A well-formed name that is not pulled: the same text everywhere.
    missing = raw(sim.url, "POST", "/api/chat", body={"model": "llama9", "messages": []})
    assert (missing.status, missing.lines[0]) == (404, {"error": "model 'llama9' not found"})


@pytest.mark.parametrize("version", ["0.12.6", "0.33.0"])
def test_show_has_capabilities_in_every_version(start_sim, version: str) -> None:
    sim = start_sim(quick_config(version=version))
    with ollama.Client(host=sim.url) as client:
        assert client.show("thinker:1b").capabilities == ["completion", "thinking"]
        assert [m.model for m in client.list().models] == ["quick:1b", "thinker:1b"]
    tags_caps = [m.get("capabilities") for m in raw(sim.url, "GET", "/api/tags").lines[0]["models"]]
    new = version >= "0.30"
    assert tags_caps == ([["completion"], ["completion", "thinking"]] if new else [None, None])


@pytest.mark.parametrize(
    ("version", "vram_gib", "num_ctx"),
    [("0.15.4", 40, 4096), ("0.15.5", 40, 32768), ("0.33.0", 80, 262144), ("0.33.0", 16, 4096)],
)
def test_default_num_ctx_follows_version_and_vram(start_sim, version, vram_gib, num_ctx) -> None:
    plain = ModelSpec("plain:1b", load_ms=0, prompt_tps=50_000, eval_tps=5_000, reply_tokens=2)
    sim = start_sim(SimConfig(models=(plain,), version=version, vram_gib=vram_gib))
    raw(sim.url, "POST", "/api/generate", body={"model": "plain:1b"})
    (entry,) = raw(sim.url, "GET", "/api/ps").lines[0]["models"]
    assert entry["context_length"] == num_ctx


@pytest.mark.parametrize(("version", "uncached_only"), [("0.30.0", True), ("0.30.1", False)])
def test_prompt_eval_count_with_a_cached_prefix(start_sim, version, uncached_only) -> None:
    sim = start_sim(quick_config(version=version))
    body = {"model": "quick:1b", "prompt": "one two three four five six", "stream": False}
    first = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    again = raw(sim.url, "POST", "/api/generate", body=body).lines[0]
    assert first["prompt_eval_count"] == 6
    # Five of six tokens are cached the second time (one is always evaluated).
    assert again["prompt_eval_count"] == (1 if uncached_only else 6)


def test_version_endpoint_reports_the_profile_version(start_sim) -> None:
    sim = start_sim(SimConfig(models=(QUICK,), version="0.12.3"))
    assert raw(sim.url, "GET", "/api/version").body == b'{"version":"0.12.3"}'
