"""The driver's lean stream path (client/lean.py) against the httpx path: same outcomes.

Every case runs the driver twice, ``lean=True`` and ``lean=False``, against the same server
(the simulator in a thread, or a canned stand-in for a proxy) and compares what ``load``
keeps: ok, the error kind, the chunk count and the server's figures.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import pytest

from ollamakit.config import Settings
from ollamakit.load.dataset import Item
from ollamakit.load.driver import OllamaDriver
from ollamakit.load.engine import Level, LoadRequest, Outcome
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig
from tests.proxyish import Canned, CannedServer, generate_chunks, server_tls_context
from tests.support import closed_port, faulty, settings_for

ITEM = Item("hi", "chat", ({"role": "user", "content": "Hello"},))
FAST = ModelSpec("fast:1b", load_ms=0, warm_load_ms=0, eval_tps=2000, reply_tokens=12)


def _send(settings: Settings, model: str, *, lean: bool, count: int = 1, **kw: Any) -> Any:
    async def go() -> tuple[list[Outcome], bool]:
        driver = OllamaDriver(settings, model, lean=lean, **kw)
        try:
            await driver.server_version()
            requests = [LoadRequest(i, Level("users", 1), 0, ITEM, 0) for i in range(count)]
            outcomes = [await driver.send(r) for r in requests]
            return outcomes, driver._pool is not None
        finally:
            await driver.aclose()

    return asyncio.run(go())


def _key(o: Outcome) -> tuple[Any, ...]:
    return (o.ok, o.error_kind, o.eval_count, o.extra.get("end"), o.extra.get("done_reason"))


def _both(settings: Settings, model: str, **kw: Any) -> list[Outcome]:
    lean, used = _send(settings, model, lean=True, **kw)
    assert used, "the lean path was not taken"
    slow, used = _send(settings, model, lean=False, **kw)
    assert not used
    assert [_key(o) for o in lean] == [_key(o) for o in slow]
    return list(lean)


def test_a_reply_measures_the_same_and_reuses_its_connection(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(FAST,), num_parallel=4))
    outcomes = _both(settings_for(sim.url), "fast:1b", count=3)
    assert all(o.ok and o.eval_count == 12 and o.ttft_ms is not None for o in outcomes)
    assert all(o.sent_ns < o.end_ns for o in outcomes)
    # keep-alive: the lean run's three requests came on one connection
    peers = {r.peer for r in sim.requests() if r.path == "/api/chat"} - {None}
    assert len(peers) <= 2  # one per path (lean, httpx); a peer per request would be 6


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault(FaultKind.BUSY), "busy"),
        (Fault(FaultKind.ERROR_AFTER, 3), "stream"),
        (Fault(FaultKind.CUT_AFTER, 3), "stream"),
        (Fault(FaultKind.STATUS, 500), "http"),
    ],
)
def test_error_kinds_match(start_sim: Any, fault: Fault, kind: str) -> None:
    sim = start_sim(SimConfig(models=(faulty("bad:1b", fault),)))
    (outcome,) = _both(settings_for(sim.url), "bad:1b")
    assert not outcome.ok and outcome.error_kind == kind


def test_a_stall_is_a_timeout(start_sim: Any) -> None:
    sim = start_sim(SimConfig(models=(faulty("stall:1b", Fault(FaultKind.STALL_AFTER, 2)),)))
    (outcome,) = _both(settings_for(sim.url), "stall:1b", timeout_s=0.5)
    assert outcome.error_kind == "timeout"


def test_an_unknown_model_and_a_refused_port() -> None:
    with CannedServer({"/api/version": Canned(200, '{"version":"0.33.0"}')}) as srv:
        srv.routes["/api/chat"] = Canned(404, '{"error":"model \\"x\\" not found"}')
        (outcome,) = _both(settings_for(srv.url), "x")
        assert outcome.error_kind == "http" and "x" in (outcome.error or "")

    port = closed_port()

    async def refused(lean: bool) -> Outcome:
        driver = OllamaDriver(settings_for(f"http://127.0.0.1:{port}"), "x", lean=lean)
        driver.api = "ollama"  # (detection would fail first: the send is what is compared)
        try:
            return await driver.send(LoadRequest(0, Level("users", 1), 0, ITEM, 0))
        finally:
            await driver.aclose()

    lean, slow = asyncio.run(refused(True)), asyncio.run(refused(False))
    assert lean.error_kind == slow.error_kind == "connect"
    assert lean.error == slow.error


def test_what_goes_on_the_wire_and_a_compressed_body(ca: Any, ca_file: Path) -> None:
    lines = generate_chunks("m", 4, 1.0)
    chat = [line.replace(b'"response"', b'"message":{"role":"assistant","content":"x"},"r"')
            for line in lines]  # fmt: skip
    routes: dict[str, Any] = {
        "/ollama/api/version": Canned(200, '{"version":"0.33.0"}'),
        "/ollama/api/chat": Canned(
            200,
            gzip.compress(b"".join(chat)),
            content_type="application/x-ndjson",
            headers={"Content-Encoding": "gzip"},
        ),
    }
    with CannedServer(routes, tls=server_tls_context(ca)) as srv:
        url = srv.url.replace("https://", "https://ann:s3cret@") + "/ollama"
        (outcome,) = _both(settings_for(url, ca_file), "m")
        assert outcome.ok and outcome.eval_count == 4
        lean, slow = [r for r in srv.requests if r.path == "/ollama/api/chat"]
        headers = {k.lower(): v for k, v in lean.headers.items()}
        assert headers["authorization"] == "Basic YW5uOnMzY3JldA=="
        assert headers["host"] == f"127.0.0.1:{srv.port}"
        assert headers["content-type"] == "application/json"
        assert lean.body == slow.body  # the same JSON body on both paths


def test_a_full_queue_answers_each_stream_its_own(start_sim: Any) -> None:
    """503s from a full load queue (the model loads for 300 ms) beside streams that succeed."""
    slow = ModelSpec("slow:1b", load_ms=300, warm_load_ms=0, eval_tps=100, reply_tokens=12)
    sim = start_sim(SimConfig(models=(slow,), num_parallel=2, max_queue=2))

    async def go() -> list[Outcome]:
        driver = OllamaDriver(settings_for(sim.url), "slow:1b")
        try:
            await driver.server_version()
            await driver.prepare(Level("users", 12))
            requests = [LoadRequest(i, Level("users", 12), i, ITEM, 0) for i in range(12)]
            return list(await asyncio.gather(*(driver.send(r) for r in requests)))
        finally:
            await driver.aclose()

    outcomes = asyncio.run(go())
    kinds = [o.error_kind for o in outcomes]
    assert "busy" in kinds and None in kinds and set(kinds) <= {"busy", None}
    assert all(o.eval_count == 12 for o in outcomes if o.ok)


def test_the_lean_path_under_uvloop(start_sim: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    from ollamakit.load.engine import loop_factory

    sim = start_sim(SimConfig(models=(FAST, faulty("bad:1b", Fault(FaultKind.CUT_AFTER, 3)))))

    async def go() -> list[Outcome]:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        out = []
        for model in ("fast:1b", "fast:1b", "bad:1b"):
            driver = OllamaDriver(settings_for(sim.url), model)
            try:
                await driver.server_version()
                out.append(await driver.send(LoadRequest(0, Level("users", 1), 0, ITEM, 0)))
            finally:
                await driver.aclose()
        return out

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        ok, again, cut = runner.run(go())
    assert ok.ok and again.ok and ok.eval_count == 12
    assert cut.error_kind == "stream"
    monkeypatch.setenv("OLLAMAKIT_UVLOOP", "0")
    assert loop_factory() is None
