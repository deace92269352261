"""The official ``ollama`` Python client must not be able to tell the simulator from Ollama."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import ollama
import pytest

from ollamakit.sim import Fault, FaultKind, ThreadedSim

from .conftest import QUICK, THINKER, faulty, quick_config


@pytest.fixture
def client(sim: ThreadedSim) -> Iterator[ollama.Client]:
    with ollama.Client(host=sim.url) as client:
        yield client


def test_list_show_ps(client: ollama.Client) -> None:
    listed = client.list()
    assert [m.model for m in listed.models] == ["quick:1b", "thinker:1b"]
    assert listed.models[0].size == QUICK.size
    assert listed.models[0].details is not None
    assert listed.models[0].details.quantization_level == "Q8_0"
    assert client.ps().models == []

    shown = client.show("thinker:1b")
    assert shown.capabilities == ["completion", "thinking"]
    assert shown.details is not None and shown.details.family == "qwen3"
    assert shown.modelinfo is not None and shown.modelinfo["general.architecture"] == "qwen3"

    client.generate("quick:1b")  # load only
    running = client.ps().models
    assert [m.model for m in running] == ["quick:1b"]
    assert running[0].expires_at is not None and running[0].expires_at > datetime.now(timezone.utc)
    assert running[0].size_vram == QUICK.size_vram


def test_version_if_the_client_has_it(client: ollama.Client, sim: ThreadedSim) -> None:
    import httpx

    assert httpx.get(sim.url + "/api/version").json() == {"version": sim.config.version}
    if hasattr(client, "version"):  # newer ollama-python versions
        assert client.version() is not None


def test_generate_non_stream_and_stream(client: ollama.Client) -> None:
    whole = client.generate("quick:1b", "Why is the sky blue?")
    assert whole.done is True and whole.done_reason == "stop"
    assert whole.eval_count == QUICK.reply_tokens
    assert whole.prompt_eval_count == 6
    assert whole.total_duration and whole.load_duration and whole.eval_duration
    assert whole.context

    parts = list(client.generate("quick:1b", "Why is the sky blue?", stream=True))
    assert parts[-1].done is True and all(not p.done for p in parts[:-1])
    assert "".join(p.response for p in parts) == whole.response


def test_chat_stream_non_stream_and_thinking(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Hello!"}]
    whole = client.chat("quick:1b", messages=messages)
    assert whole.message.role == "assistant" and whole.message.content.startswith("Hello")
    streamed = list(client.chat("quick:1b", messages=messages, stream=True))
    assert "".join(p.message.content for p in streamed) == whole.message.content

    thought = client.chat("thinker:1b", messages=messages, think=True)
    assert thought.message.thinking and thought.message.content
    assert thought.eval_count == THINKER.thinking_tokens + THINKER.reply_tokens
    chunks = list(client.chat("thinker:1b", messages=messages, stream=True))
    first_answer = next(i for i, c in enumerate(chunks) if c.message.content)
    assert all(c.message.thinking for c in chunks[:first_answer])
    assert not any(c.message.thinking for c in chunks[first_answer:])

    with pytest.raises(ollama.ResponseError) as info:
        client.chat("quick:1b", messages=messages, think=True)
    assert info.value.status_code == 400
    assert info.value.error == '"quick:1b" does not support thinking'


def test_generate_options_num_predict(client: ollama.Client) -> None:
    reply = client.generate(
        "quick:1b", "hi", options={"num_predict": 3, "seed": 42, "temperature": 0.2}
    )
    assert (reply.eval_count, reply.done_reason) == (3, "length")


def test_unknown_model_is_404(client: ollama.Client) -> None:
    for call in (
        lambda: client.generate("llama9", "x"),
        lambda: client.chat("llama9", messages=[{"role": "user", "content": "x"}]),
        lambda: client.show("llama9"),
    ):
        with pytest.raises(ollama.ResponseError) as info:
            call()
        assert info.value.status_code == 404
        assert "not found" in info.value.error


def test_busy_is_503(start_sim) -> None:
    sim = start_sim(quick_config(faulty("busy:1b", Fault(FaultKind.BUSY))))
    with ollama.Client(host=sim.url) as client:
        for stream in (False, True):
            with pytest.raises(ollama.ResponseError) as info:
                result = client.generate("busy:1b", "x", stream=stream)
                if stream:
                    list(result)  # type: ignore[arg-type]
            assert info.value.status_code == 503
            assert info.value.error == (
                "server busy, please try again.  maximum pending requests exceeded"
            )


def test_mid_stream_error_raises(start_sim) -> None:
    sim = start_sim(quick_config(faulty("broken:1b", Fault(FaultKind.ERROR_AFTER, 3))))
    seen = []
    with ollama.Client(host=sim.url) as client:
        with pytest.raises(ollama.ResponseError) as info:
            for part in client.generate("broken:1b", "x", stream=True):
                seen.append(part.response)
        assert len(seen) == 3
        assert info.value.error == "an error was encountered while running the model"
        with pytest.raises(ollama.ResponseError) as info:
            client.generate("broken:1b", "x")  # the same failure without streaming: HTTP 500
        assert info.value.status_code == 500
