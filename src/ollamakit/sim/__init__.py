"""An Ollama API simulator: scripted models with real timing, real wire format, real faults.

It answers ``/``, ``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``,
``/api/generate`` and ``/api/chat`` as Ollama does, byte for byte where a client could tell
(content types, status codes, error texts, key order, Go's JSON escaping, chunked NDJSON), so
it can stand in for a GPU server in demos, proxy checks and tests. Models, their timing and
their faults are scripted (:class:`SimConfig`, :class:`ModelSpec`, :class:`Fault`).

Layers, bottom up::

    gojson   Go-compatible JSON encoding/decoding errors, RFC3339Nano, Go durations
    tokens   the toy tokenizer (count_tokens) and deterministic replies
    config   SimConfig / ModelSpec / Fault, config files and flags
    http     asyncio.Protocol HTTP/1.1 server (chunked, keep-alive, flow control)
    guards   Ollama's CORS and Host-header middlewares
    engine   model load state, keep-alive, parallel slots, the bounded queue
    stream   chunk templates and the deadline-driven writer
    log      the request log (server-side monotonic timestamps)
    app      routing and the endpoint handlers
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
