"""An Ollama API simulator: scripted models with real timing, real wire format, real faults.

It answers ``/``, ``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``,
``/api/generate``, ``/api/chat``, ``/api/embed``, ``/api/embeddings`` and the OpenAI-compatible
``/v1/models`` and ``/v1/chat/completions`` as the Ollama version it reports does
(:mod:`ollamakit.sim.profiles`), or as llama.cpp's ``llama-server`` (``engine="llama.cpp"``),
byte for byte where a client could tell (content types, status codes, error texts, key order,
Go's JSON escaping, chunked NDJSON), so it can stand in for a GPU server in demos, proxy checks
and tests. Models, their timing and their faults are scripted (:class:`SimConfig`,
:class:`ModelSpec`, :class:`Fault`).

Layers, bottom up::

    gojson   Go-compatible JSON encoding/decoding errors, RFC3339Nano, Go durations
    tokens   the toy tokenizer (count_tokens) and deterministic replies
    profiles what each Ollama version does differently (--ollama-version)
    faults   Fault values and the registry of fault classes with their hooks
    config   SimConfig / ModelSpec, presets, config files and flags
    http     asyncio.Protocol HTTP/1.1 server (chunked, keep-alive, flow control)
    guards   Ollama's CORS and Host-header middlewares
    engine   model load state, keep-alive, parallel slots, the bounded queue
    stream   chunk templates and the deadline-driven writer
    log      the request log (server-side monotonic timestamps)
    app      routing, the endpoint handlers and the generation core (plan, emit, sinks)
    openai   /v1 as Ollama's, and llama-server's API (SSE sinks on the same core)
    server   SimServer, run_in_thread, start_subprocess
    cli      ``ollamakit sim``

Usage in tests::

    from ollamakit.sim import ModelSpec, SimConfig, run_in_thread

    config = SimConfig(models=(ModelSpec("m:1b", eval_tps=200, reply_tokens=10),))
    with run_in_thread(config) as sim:
        ...  # talk to sim.url; inspect sim.requests()
"""

from __future__ import annotations

from ollamakit.sim.config import (
    ModelSpec,
    SimConfig,
    default_models,
    load_config_file,
)
from ollamakit.sim.faults import Fault, FaultKind
from ollamakit.sim.log import RequestRecord
from ollamakit.sim.server import (
    SimProcess,
    SimServer,
    ThreadedSim,
    run_in_thread,
    start_subprocess,
    subprocess_sim,
)
from ollamakit.sim.tokens import chat_prompt_tokens, count_tokens, generate_prompt_tokens

__all__ = [
    "Fault",
    "FaultKind",
    "ModelSpec",
    "RequestRecord",
    "SimConfig",
    "SimProcess",
    "SimServer",
    "ThreadedSim",
    "chat_prompt_tokens",
    "count_tokens",
    "default_models",
    "generate_prompt_tokens",
    "load_config_file",
    "run_in_thread",
    "start_subprocess",
    "subprocess_sim",
]
