"""Scripted faults, seen by a client on the wire: cut, stall, error lines, 503, slow headers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import httpx
import pytest

from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, ThreadedSim

from .conftest import faulty, quick_config, raw


def test_error_after_n_chunks_keeps_200_and_ends_with_an_error_line(start_sim) -> None:
    sim = start_sim(quick_config(faulty("err:1b", Fault(FaultKind.ERROR_AFTER, 4))))
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "err:1b", "prompt": "x"})
    assert reply.status == 200 and reply.complete
    lines = reply.lines
    assert len(lines) == 5
    assert all(line["done"] is False for line in lines[:4])
    assert lines[-1] == {"error": "an error was encountered while running the model"}
    (record,) = sim.requests()
    assert record.outcome == "error" and record.chunks == 5


def test_error_before_the_first_chunk_uses_the_status(start_sim) -> None:
    sim = start_sim(
        quick_config(
            faulty("err0:1b", Fault(FaultKind.ERROR_AFTER, 0)),
            faulty("crash:1b", Fault(FaultKind.STATUS, 500)),
            faulty("limited:1b", Fault(FaultKind.STATUS, 429, "rate limit exceeded")),
        )
    )
    stream = raw(sim.url, "POST", "/api/generate", body={"model": "err0:1b", "prompt": "x"})
    assert stream.status == 500
    assert stream.header("Content-Type") == "application/json"  # a stream's error: no charset
    assert stream.lines == [{"error": "an error was encountered while running the model"}]

    crash = raw(
        sim.url,
        "POST",
        "/api/chat",
        body={"model": "crash:1b", "messages": [{"role": "user", "content": "x"}]},
    )
    assert crash.status == 500
    assert crash.lines[0]["error"].startswith("model runner has unexpectedly stopped")

    body = {"model": "limited:1b", "prompt": "x", "stream": False}
    limited = raw(sim.url, "POST", "/api/generate", body=body)
    assert limited.status == 429
    assert limited.header("Content-Type") == "application/json; charset=utf-8"
    assert limited.lines == [{"error": "rate limit exceeded"}]


def test_cut_after_closes_mid_body(start_sim) -> None:
    sim = start_sim(quick_config(faulty("cut:1b", Fault(FaultKind.CUT_AFTER, 3))))
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "cut:1b", "prompt": "x"})
    assert reply.status == 200
    assert not reply.complete  # no terminating 0-size chunk
    assert len(reply.lines) == 3 and not any(line.get("done") for line in reply.lines)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.Client() as client,
        client.stream(
            "POST", sim.url + "/api/generate", json={"model": "cut:1b", "prompt": "x"}
        ) as r,
    ):
        for _ in r.iter_lines():
            pass
    assert [r.outcome for r in sim.requests()] == ["cut", "cut"]


def test_stall_after_keeps_the_connection_open_without_data(start_sim) -> None:
    sim = start_sim(quick_config(faulty("stall:1b", Fault(FaultKind.STALL_AFTER, 2))))
    lines: list[str] = []
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=0.5)) as client,
        pytest.raises(httpx.ReadTimeout),
        client.stream(
            "POST", sim.url + "/api/generate", json={"model": "stall:1b", "prompt": "x"}
        ) as r,
    ):
        for line in r.iter_lines():
            lines.append(line)
    assert len(lines) == 2
    (record,) = sim.requests()
    assert record.chunks == 2


def test_stall_ends_after_stall_s(start_sim) -> None:
    sim = start_sim(quick_config(faulty("stall:1b", Fault(FaultKind.STALL_AFTER, 1)), stall_s=0.3))
    start = time.perf_counter()
    reply = raw(sim.url, "POST", "/api/generate", body={"model": "stall:1b", "prompt": "x"})
    assert 0.3 <= time.perf_counter() - start < 2
    assert not reply.complete and len(reply.lines) == 1


def test_a_stalled_request_frees_its_slot_when_the_client_hangs_up(start_sim) -> None:
    """Like Ollama (Go cancels the request context): a client that gives up frees the model."""
    stalled = faulty("stall:1b", Fault(FaultKind.STALL_AFTER, 1))
    sim = start_sim(quick_config(stalled, num_parallel=1, stall_s=60))
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=0.5)) as client,
        pytest.raises(httpx.ReadTimeout),
        client.stream(
            "POST", sim.url + "/api/generate", json={"model": "stall:1b", "prompt": "x"}
        ) as r,
    ):
        for _ in r.iter_lines():
            pass
    # The same model again: with the slot still held this waits for stall_s (60 s) and the
    # 3 s read timeout fires before any header arrives.
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=3)) as client,
        client.stream(
            "POST", sim.url + "/api/generate", json={"model": "stall:1b", "prompt": "x"}
        ) as r,
    ):
        assert r.status_code == 200
        assert '"done":false' in next(r.iter_lines())


def test_slow_headers_delay_the_status_line(start_sim) -> None:
    sim = start_sim(quick_config(faulty("slow:1b", Fault(FaultKind.SLOW_HEADERS_MS, 400))))
    hostport = sim.url.split("://")[1]
    body = b'{"model":"slow:1b","prompt":"x"}'
    request = (
        f"POST /api/generate HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((sim.host, sim.port), timeout=5) as sock:
        sock.sendall(request)
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing at all for 300 ms
        sock.settimeout(5)
        assert sock.recv(12) == b"HTTP/1.1 200"
    (record,) = sim.requests()
    assert record.headers_sent_ns is not None
    assert record.headers_sent_ns - record.received_ns >= 400_000_000


def test_busy_is_always_503_with_the_two_space_message(start_sim) -> None:
    sim = start_sim(quick_config(faulty("busy:1b", Fault(FaultKind.BUSY))))
    for body in ({"model": "busy:1b", "prompt": "x"}, {"model": "busy:1b"}):
        reply = raw(sim.url, "POST", "/api/generate", body=body)
        assert reply.status == 503
        assert reply.header("Content-Type") == "application/json; charset=utf-8"
        assert reply.body == (
            b'{"error":"server busy, please try again.  maximum pending requests exceeded"}'
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_load_queue_overflow_gives_503(start_sim) -> None:
    """Ollama's 503 comes from its bounded queue of requests waiting for a (re)load."""
    slow = ModelSpec(
        "slow:1b", load_ms=1500, warm_load_ms=0, prompt_tps=1e9, eval_tps=1_000, reply_tokens=3
    )
    sim: ThreadedSim = start_sim(SimConfig(models=(slow,), num_parallel=1, max_queue=2))
    scheduler = sim.server.app.scheduler  # type: ignore[union-attr]
    runtime = next(iter(scheduler.runtimes.values()))
    statuses: list[int] = []

    def one() -> None:
        body = {"model": "slow:1b", "prompt": "x"}
        statuses.append(raw(sim.url, "POST", "/api/generate", body=body).status)

    loader = threading.Thread(target=one)  # starts the load: the scheduler's current request
    waiting = [threading.Thread(target=one) for _ in range(2)]
    loader.start()
    wait_for(lambda: runtime.state.value == "loading")
    for t in waiting:
        t.start()
    wait_for(lambda: scheduler.waiting == 2)  # two wait for the load: the queue is full
    for _ in range(3):
        one()  # answered at once
    assert statuses == [503, 503, 503]
    for t in [loader, *waiting]:
        t.join()
    assert statuses == [503, 503, 503, 200, 200, 200]
    rejected = [r for r in sim.requests() if r.status == 503]
    busy = "server busy, please try again.  maximum pending requests exceeded"
    assert len(rejected) == 3 and all(r.error == busy for r in rejected)
    # The /_sim/state view agrees with what the scheduler did.
    assert httpx.get(sim.url + "/_sim/state").json()["waiting"] == 0


def test_a_loaded_model_queues_for_its_slot_instead_of_503(start_sim) -> None:
    slow = ModelSpec(
        "slow:1b", load_ms=0, warm_load_ms=0, prompt_tps=1e9, eval_tps=100, reply_tokens=10
    )
    sim: ThreadedSim = start_sim(SimConfig(models=(slow,), num_parallel=1, max_queue=1))
    raw(sim.url, "POST", "/api/generate", body={"model": "slow:1b"})  # load it
    replies: list[tuple[int, float]] = []

    def one() -> None:
        start = time.perf_counter()
        reply = raw(sim.url, "POST", "/api/generate", body={"model": "slow:1b", "prompt": "x"})
        replies.append((reply.status, time.perf_counter() - start))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in replies] == [200] * 4  # max_queue 1, yet no 503
    # One slot: the replies (about 0.1 s each) came one after another.
    assert max(seconds for _, seconds in replies) > 0.3


def test_client_disconnect_frees_the_slot(start_sim) -> None:
    slow = ModelSpec(
        "slow:1b", load_ms=0, warm_load_ms=0, prompt_tps=1e9, eval_tps=20, reply_tokens=200
    )
    sim: ThreadedSim = start_sim(SimConfig(models=(slow,), num_parallel=1))
    with httpx.Client() as client:
        with client.stream(
            "POST", sim.url + "/api/generate", json={"model": "slow:1b", "prompt": "x"}
        ) as r:
            next(r.iter_lines())
        # The first stream was abandoned after one line; the next request must not wait 10 s.
        start = time.perf_counter()
        body = {"model": "slow:1b", "prompt": "x", "options": {"num_predict": 2}, "stream": False}
        assert client.post(sim.url + "/api/generate", json=body, timeout=5).status_code == 200
        assert time.perf_counter() - start < 1
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and sim.requests()[0].outcome == "pending":
        time.sleep(0.02)
    assert sim.requests()[0].outcome == "client_closed"


def test_fault_flags_parse_and_apply(start_sim) -> None:
    from ollamakit.sim.config import parse_fault_flag

    config = quick_config().with_faults(
        [parse_fault_flag("quick:1b:error_after:2"), parse_fault_flag("*:slow_headers_ms=1")]
    )
    kinds = {m.name: sorted(f.kind.value for f in m.faults) for m in config.models}
    assert kinds == {
        "quick:1b": ["error_after", "slow_headers_ms"],
        "thinker:1b": ["slow_headers_ms"],
    }
    sim = start_sim(config)
    lines = raw(sim.url, "POST", "/api/generate", body={"model": "quick:1b", "prompt": "x"}).lines
    assert len(lines) == 3 and "error" in lines[-1]
