"""Model kinds: a gpt-oss-like thinker, an embedding model, a cloud model, partial offload, and
the ``real-world`` preset that serves them beside the plain three."""

from __future__ import annotations

import argparse
import time

import httpx
import ollama
import pytest

from ollamakit.sim import ModelSpec, SimConfig
from ollamakit.sim.cli import add_arguments, config_from_args
from ollamakit.sim.config import default_models, parse_model_flag, preset_models

from .conftest import raw

FAST = {"load_ms": 5, "warm_load_ms": 0, "prompt_tps": 50_000, "eval_tps": 2_000}
GPT_OSS = ModelSpec(
    "oss:20b", thinking=True, think_levels_only=True, reply_tokens=5, thinking_tokens=4, **FAST
)
EMBED = ModelSpec("nomic-embed-text", kind="embedding", embedding_length=16, **FAST)
CLOUD = ModelSpec(
    "big:120b-cloud",
    kind="cloud",
    size=384,
    remote_model="big:120b",
    remote_host="https://ollama.com:443",
    reply_tokens=4,
    **FAST,
)
KINDS = SimConfig(models=(GPT_OSS, EMBED, CLOUD))


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_preset_real_world_adds_the_four_kinds_and_the_default_set_is_unchanged() -> None:
    assert [m.name for m in default_models()] == ["llama3.2:3b", "qwen2.5:0.5b", "deepseek-r1:1.5b"]
    config = config_from_args(_args("--preset", "real-world"))
    names = [m.tag_name for m in config.models]
    assert names[:3] == ["llama3.2:3b", "qwen2.5:0.5b", "deepseek-r1:1.5b"]
    kinds = {m.tag_name: m for m in config.models}
    assert kinds["gpt-oss:20b"].think_levels_only
    assert kinds["nomic-embed-text:latest"].kind == "embedding"
    assert kinds["gpt-oss:120b-cloud"].kind == "cloud"
    assert kinds["gemma3:27b"].vram < kinds["gemma3:27b"].size
    # --model adds to a preset instead of replacing it.
    more = config_from_args(_args("--preset", "real-world", "--model", "x:1b,kind=embedding"))
    assert len(more.models) == len(config.models) + 1 and more.models[-1].embedding
    assert preset_models("default") == default_models()


@pytest.mark.parametrize("version", ["0.12.6", "0.33.0"])
def test_gpt_oss_cannot_turn_thinking_off_and_takes_levels(start_sim, version: str) -> None:
    sim = start_sim(SimConfig(models=(GPT_OSS,), version=version))
    for think in (False, None, "low"):
        body = {"model": "oss:20b", "prompt": "x", "stream": False}
        if think is not None:
            body["think"] = think
        reply = raw(sim.url, "POST", "/api/generate", body=body)
        assert reply.status == 200, (think, reply.body)
        assert reply.lines[0]["thinking"], think  # thinking either way


def test_embedding_model_refuses_chat_and_generate_and_embeds(start_sim) -> None:
    sim = start_sim(KINDS)
    chat = raw(
        sim.url,
        "POST",
        "/api/chat",
        body={"model": "nomic-embed-text", "messages": [{"role": "user", "content": "x"}]},
    )
    assert (chat.status, chat.lines[0]) == (
        400,
        {"error": '"nomic-embed-text" does not support chat'},
    )
    gen = raw(sim.url, "POST", "/api/generate", body={"model": "nomic-embed-text", "prompt": "x"})
    assert (gen.status, gen.lines[0]) == (
        400,
        {"error": '"nomic-embed-text" does not support generate'},
    )

    reply = raw(
        sim.url, "POST", "/api/embed", body={"model": "nomic-embed-text", "input": ["a b", "c"]}
    )
    data = reply.lines[0]
    assert list(data) == [
        "model",
        "embeddings",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
    ]
    assert data["prompt_eval_count"] == 3 and len(data["embeddings"]) == 2
    assert all(len(v) == 16 for v in data["embeddings"])
    assert abs(sum(x * x for x in data["embeddings"][0]) - 1) < 1e-5  # normalized
    legacy = raw(
        sim.url, "POST", "/api/embeddings", body={"model": "nomic-embed-text", "prompt": "a b"}
    )
    assert list(legacy.lines[0]) == ["embedding"]
    assert legacy.lines[0]["embedding"] == data["embeddings"][0]  # deterministic

    with ollama.Client(host=sim.url) as client:
        embedded = client.embed("nomic-embed-text", "a b")
        assert embedded.embeddings[0] == data["embeddings"][0]
        shown = client.show("nomic-embed-text")
        assert shown.capabilities == ["embedding"]
        with pytest.raises(ollama.ResponseError) as err:
            client.chat("nomic-embed-text", messages=[{"role": "user", "content": "x"}])
        assert err.value.status_code == 400


def test_cloud_model_is_listed_tiny_and_needs_a_signin(start_sim) -> None:
    sim = start_sim(KINDS)
    models = {m["name"]: m for m in raw(sim.url, "GET", "/api/tags").lines[0]["models"]}
    cloud = models["big:120b-cloud"]
    assert list(cloud)[:4] == ["name", "model", "remote_model", "remote_host"]
    assert (cloud["remote_model"], cloud["remote_host"], cloud["size"]) == (
        "big:120b",
        "https://ollama.com:443",
        384,
    )
    body = {"model": "big:120b-cloud", "messages": [{"role": "user", "content": "hi"}]}
    reply = raw(sim.url, "POST", "/api/chat", body=body)
    assert reply.status == 401
    data = reply.lines[0]
    assert list(data) == ["error", "signin_url"] and data["error"] == "unauthorized"
    assert data["signin_url"].startswith("https://ollama.com/connect?")


def test_cloud_disabled_is_403_with_ollama_text_and_signed_in_answers(start_sim) -> None:
    disabled = start_sim(SimConfig(models=(CLOUD,), cloud="disabled"))
    body = {"model": "big:120b-cloud", "messages": [{"role": "user", "content": "hi"}]}
    reply = raw(disabled.url, "POST", "/api/chat", body=body)
    assert (reply.status, reply.lines[0]) == (
        403,
        {"error": "ollama cloud is disabled: remote model is unavailable"},
    )
    signed_in = start_sim(SimConfig(models=(CLOUD,), cloud="signed_in"))
    lines = raw(signed_in.url, "POST", "/api/chat", body=body).lines
    assert list(lines[0])[:4] == ["model", "remote_model", "remote_host", "created_at"]
    assert lines[-1]["done"] is True
    assert raw(signed_in.url, "GET", "/api/ps").lines[0] == {"models": []}  # runs remotely


def test_partial_offload_shows_in_ps_and_decodes_slower(start_sim) -> None:
    base = {"load_ms": 0, "warm_load_ms": 0, "prompt_tps": 1e9, "eval_tps": 200, "reply_tokens": 11}
    full = ModelSpec("full:1b", size=1000, **base)
    part = ModelSpec("part:1b", size=1000, size_vram=500, offload_slowdown=3.0, **base)
    sim = start_sim(SimConfig(models=(full, part)))
    rates = {}
    for name in ("full:1b", "part:1b"):
        final = raw(sim.url, "POST", "/api/generate", body={"model": name, "prompt": "x"}).lines[-1]
        rates[name] = final["eval_count"] / final["eval_duration"] * 1e9
    # 0.5 on the GPU, 0.5 three times slower: twice the time per token.
    assert rates["part:1b"] == pytest.approx(rates["full:1b"] / 2, rel=0.2)
    ps = {m["name"]: m for m in raw(sim.url, "GET", "/api/ps").lines[0]["models"]}
    assert (ps["part:1b"]["size"], ps["part:1b"]["size_vram"]) == (1000, 500)
    assert ps["full:1b"]["size_vram"] == ps["full:1b"]["size"]


def test_model_flag_and_file_keys_for_the_kinds(tmp_path) -> None:
    spec = parse_model_flag(
        "c:1b-cloud,kind=cloud,remote_model=c:1b,size=300,think_levels_only=yes,thinking=yes,"
        "done_text=2,template_tokens=3,offload_slowdown=4,embedding_length=8"
    )
    assert (spec.kind, spec.remote_model, spec.size, spec.think_levels_only) == (
        "cloud",
        "c:1b",
        300,
        True,
    )
    assert (spec.done_text, spec.template_tokens, spec.offload_slowdown, spec.embedding_length) == (
        2,
        3,
        4.0,
        8,
    )
    path = tmp_path / "sim.toml"
    path.write_text(
        'engine = "llama.cpp"\ncloud = "disabled"\nvram_gib = 48\nprefix_cache = false\n'
        '[[models]]\nname = "e:1b"\nkind = "embedding"\n'
    )
    config = config_from_args(_args("--config", str(path)))
    assert (config.engine, config.cloud, config.vram_gib, config.prefix_cache) == (
        "llama.cpp",
        "disabled",
        48.0,
        False,
    )
    assert SimConfig.from_dict(config.to_dict()) == config
    with pytest.raises(Exception, match="kind"):
        parse_model_flag("x:1b,kind=banana")


def test_real_world_preset_over_http_in_a_subprocess() -> None:
    from ollamakit.sim import subprocess_sim

    with subprocess_sim(["--preset", "real-world", "--speed", "20"]) as sim:
        tags = httpx.get(sim.url + "/api/tags", timeout=10).json()["models"]
        assert len(tags) == 7
        assert {m["name"]: m.get("capabilities") for m in tags}["nomic-embed-text:latest"] == [
            "embedding"
        ]
        start = time.perf_counter()
        reply = httpx.post(
            sim.url + "/api/chat",
            json={
                "model": "gpt-oss:20b",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": False,
            },
            timeout=30,
        ).json()
        assert reply["message"]["thinking"] and reply["message"]["content"]
        assert time.perf_counter() - start < 10
