"""The prefix cache, text on the done chunk, load/unload and num_ctx reloads, ``/api/ps``."""

from __future__ import annotations

import ollama

from ollamakit.sim import ModelSpec, SimConfig

from .conftest import raw

MS = 1_000_000
PREFILL = ModelSpec(
    "pre:1b",
    load_ms=30,
    warm_load_ms=0,
    prompt_tps=2_000,  # 0.5 ms per prompt token
    eval_tps=5_000,
    reply_tokens=4,
    template_tokens=5,
)
LONG = " ".join(["word"] * 200)


def chat(url: str, content: str, model: str = "pre:1b", **extra: object) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": False}
    return raw(url, "POST", "/api/chat", body={**body, **extra}).lines[0]


def test_a_repeated_prefix_is_counted_but_not_evaluated_again(start_sim) -> None:
    sim = start_sim(SimConfig(models=(PREFILL,)))
    first = chat(sim.url, LONG)
    assert first["prompt_eval_count"] == 205  # template (BOS, role header) + content
    assert first["prompt_eval_duration"] > 90 * MS  # 205 tokens at 2000/s
    again = chat(sim.url, LONG + " more words")
    assert again["prompt_eval_count"] == 207
    assert again["prompt_eval_duration"] < 20 * MS  # only the two new tokens
    # A run marker in front of the text defeats the cache for the text, not for the template.
    marked = chat(sim.url, "[run 7] " + LONG)
    assert marked["prompt_eval_count"] == 209
    assert 80 * MS < marked["prompt_eval_duration"] < 0.2e9  # 204 uncached, 5 cached


def test_prefix_cache_can_be_switched_off(start_sim) -> None:
    sim = start_sim(SimConfig(models=(PREFILL,), prefix_cache=False))
    chat(sim.url, LONG)
    assert chat(sim.url, LONG)["prompt_eval_duration"] > 90 * MS


def test_done_chunk_can_carry_text(start_sim) -> None:
    spec = ModelSpec(
        "flush:1b", load_ms=0, prompt_tps=1e9, eval_tps=5_000, reply_tokens=6, done_text=2
    )
    sim = start_sim(SimConfig(models=(spec,)))
    body = {"model": "flush:1b", "messages": [{"role": "user", "content": "hi"}]}
    lines = raw(sim.url, "POST", "/api/chat", body=body).lines
    assert len(lines) == 5  # 4 chunks + the done chunk
    done = lines[-1]
    assert done["done"] is True and done["message"]["content"]  # text on the done chunk
    assert done["eval_count"] == 6
    whole = raw(sim.url, "POST", "/api/chat", body={**body, "stream": False}).lines[0]
    assert "".join(line["message"]["content"] for line in lines) == whole["message"]["content"]
    with ollama.Client(host=sim.url) as client:
        text = "".join(
            part.message.content or ""
            for part in client.chat("flush:1b", messages=body["messages"], stream=True)
        )
    assert text == whole["message"]["content"]


def test_load_unload_and_ps_fields(start_sim) -> None:
    spec = ModelSpec(
        "m:1b", size=1000, size_vram=600, load_ms=10, prompt_tps=1e9, eval_tps=5000, reply_tokens=2
    )
    sim = start_sim(SimConfig(models=(spec,)))
    load = raw(sim.url, "POST", "/api/chat", body={"model": "m:1b", "messages": []}).lines[0]
    assert load["done_reason"] == "load" and "total_duration" not in load
    (entry,) = raw(sim.url, "GET", "/api/ps").lines[0]["models"]
    assert (entry["size"], entry["size_vram"], entry["context_length"]) == (1000, 600, 4096)
    assert entry["expires_at"]
    unload = raw(
        sim.url, "POST", "/api/chat", body={"model": "m:1b", "messages": [], "keep_alive": 0}
    )
    assert unload.lines[0]["done_reason"] == "unload"
    assert raw(sim.url, "GET", "/api/ps").lines[0] == {"models": []}


def test_another_num_ctx_reloads_the_model(start_sim) -> None:
    spec = ModelSpec(
        "m:1b", load_ms=80, warm_load_ms=0, prompt_tps=1e9, eval_tps=5000, reply_tokens=2
    )
    sim = start_sim(SimConfig(models=(spec,)))
    cold = chat(sim.url, "x", model="m:1b")
    warm = chat(sim.url, "x", model="m:1b")
    assert cold["load_duration"] > 70 * MS and warm["load_duration"] < 20 * MS
    bigger = chat(sim.url, "x", model="m:1b", options={"num_ctx": 8192})
    assert bigger["load_duration"] > 70 * MS  # a new runner with the new context
    (entry,) = raw(sim.url, "GET", "/api/ps").lines[0]["models"]
    assert entry["context_length"] == 8192
    same = chat(sim.url, "x", model="m:1b", options={"num_ctx": 8192})
    assert same["load_duration"] < 20 * MS
    # Without num_ctx the default applies again: another reload, as with Ollama.
    assert chat(sim.url, "x", model="m:1b")["load_duration"] > 70 * MS
    loads = [r.cold_load for r in sim.requests() if r.path == "/api/chat"]
    assert loads == [True, False, True, False, True]
