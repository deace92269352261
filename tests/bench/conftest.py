"""Fixtures for benchmark tests: simulators with scripted timing, and a quick way to run a plan.

Every test talks real HTTP to an ``ollamakit.sim`` on 127.0.0.1. Timings are short (tens of
milliseconds per request) so the whole directory runs in seconds; tolerances are generous
because the simulator and the client may share one GIL here (``bench/fidelity.py`` measures
the exact figures with the simulator in its own process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ollamakit.bench.backends import open_bench_backend
from ollamakit.bench.runner import BenchPlan, NullSink, ResultSink, Runner
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.config import Flags, load_settings
from ollamakit.measure.schema import RunDocument
from ollamakit.sim import FaultKind, ModelSpec
from tests.support import faulty as shared_faulty

FAST = ModelSpec(
    "fast:1b", load_ms=30, warm_load_ms=1, prompt_tps=50_000, eval_tps=1_000, reply_tokens=8
)

ONE_PROMPT = Suite(name="one", prompts=(Prompt("hi", "greeting", "Hello there, how are you?"),))


def faulty(name: str, kind: FaultKind, arg: int = 0) -> ModelSpec:
    """:data:`FAST` with one fault (``tests.support.faulty`` with ``base=FAST``)."""
    return shared_faulty(name, kind, arg, base=FAST)


# ``start_sim(config) -> ThreadedSim`` is the root fixture (tests/conftest.py).


def run_plan(
    url: str,
    plan: BenchPlan,
    sink: ResultSink | None = None,
    *,
    max_connections: int = 64,
    api: str = "ollama",
) -> RunDocument:
    """Run a plan in this process, as ``ollamakit bench`` does, and return the document."""
    settings = load_settings(Flags(base_url=url), environ={})
    settings = dataclasses.replace(settings, benchmark_timeout_s=plan.timeout_s)

    async def go() -> RunDocument:
        client = open_bench_backend(settings, api, max_connections=max_connections)
        runner = Runner(
            client=client,
            plan=plan,
            base_url=settings.base_url.redacted(),
            sink=sink or NullSink(),
            client_factory=lambda: open_bench_backend(settings, api, max_connections=2),
        )
        try:
            return await runner.execute()
        finally:
            await runner.aclose()
            await client.aclose()

    return asyncio.run(go())


# --------------------------------------------------------------------------- a stand-in proxy


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    upstream = ""
    buffer = True
    die_after: int | None = None  # chat requests answered before it stops listening
    chats = 0


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards to the simulator. Buffering: the whole reply is read first, then sent in one
    write (nginx with ``proxy_buffering on``). Every answer closes its connection (HTTP/1.0),
    so once the proxy stops listening the client's next connection is refused."""

    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(
            self.server.upstream + self.path, data=body, method=self.command
        )
        if body:
            request.add_header("Content-Type", "application/json")
        try:
            answer = urllib.request.urlopen(request)
        except urllib.error.HTTPError as error:
            answer = error
        data = answer.read()  # the whole reply, held back
        if self.path == "/api/chat":
            self.server.chats += 1
            if self.server.die_after is not None and self.server.chats >= self.server.die_after:
                # Stop listening before this answer goes out, so the client's next connection
                # is refused whatever the timing (this handler runs in a thread of its own).
                self.server.shutdown()
                self.server.server_close()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


@pytest.fixture
def proxy() -> Iterator[Any]:
    """``proxy(upstream, die_after=None, port=0) -> url``: a stand-in proxy in front of a
    simulator, buffering (``server.buffer``) and, with ``die_after``, gone after that many
    chats; ``port`` brings one back on the port of one that went away."""
    servers: list[_Proxy] = []

    def start(upstream: str, die_after: int | None = None, port: int = 0) -> str:
        server = _Proxy(("127.0.0.1", port), _ProxyHandler)
        server.upstream = upstream
        server.die_after = die_after
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
