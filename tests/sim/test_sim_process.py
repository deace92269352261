"""The simulator as a program: subprocess launcher, CLI output and signals, config files, the
throughput fast path, TLS and IPv6 listeners."""

from __future__ import annotations

import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from ollamakit.sim import (
    ModelSpec,
    SimConfig,
    count_tokens,
    load_config_file,
    run_in_thread,
    start_subprocess,
)
from ollamakit.sim.config import FaultKind

from .conftest import raw

FAST_FLAG = "fast:1b,eval_tps=inf,prompt_tps=inf,load_ms=0,reply_tokens=200000"


def test_fast_path_streams_200000_chunks_correctly() -> None:
    with start_subprocess(["--model", FAST_FLAG]) as proc:
        reply = raw(proc.url, "POST", "/api/generate", body={"model": "fast:1b", "prompt": "hello"})
        assert reply.status == 200 and reply.complete
        assert reply.header("Content-Type") == "application/x-ndjson"
        assert len(reply.chunks) == 200_001  # one HTTP chunk per line, even at full speed
        lines = reply.body.split(b"\n")
        assert lines[-1] == b"" and len(lines) == 200_002
        for line in lines[:-2:20_000]:  # spot-check the shape along the way
            data = orjson.loads(line)
            assert list(data) == ["model", "created_at", "response", "done"]
            assert count_tokens(data["response"]) == 1
        final = orjson.loads(lines[-2])
        assert final["done"] is True and final["eval_count"] == 200_000
        assert final["done_reason"] == "stop" and len(final["context"]) == 200_001
        (record,) = proc.requests()
        assert record.chunks == 200_001 and record.outcome == "ok"


def test_fast_path_chat_non_stream_text_has_as_many_tokens_as_eval_count(start_sim) -> None:
    spec = ModelSpec("fast:1b", eval_tps=float("inf"), load_ms=0, reply_tokens=5000)
    sim = start_sim(SimConfig(models=(spec,)))
    body = {"model": "fast:1b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    data = httpx.post(sim.url + "/api/chat", json=body, timeout=30).json()
    assert data["eval_count"] == 5000 == count_tokens(data["message"]["content"])


def test_subprocess_handle_and_request_log() -> None:
    config = SimConfig(models=(ModelSpec("sub:1b", load_ms=1, eval_tps=1000, reply_tokens=5),))
    with start_subprocess(config=config) as proc:
        assert proc.url.startswith("http://127.0.0.1:")
        reply = httpx.post(proc.url + "/api/generate", json={"model": "sub:1b", "prompt": "hi"})
        assert len(reply.text.splitlines()) == 6
        (record,) = proc.requests()
        assert record.model == "sub:1b" and record.chunks == 6
        # perf_counter_ns is CLOCK_MONOTONIC, shared with this process.
        assert abs(record.received_ns - time.perf_counter_ns()) < 10 * 1_000_000_000
        assert proc.clear_requests() == 1 and proc.requests() == []
    assert proc.proc.returncode == 0  # SIGTERM is a clean stop


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ollamakit.sim", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
    )


def _env() -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": root, "PYTHONUNBUFFERED": "1"}


def test_cli_prints_listening_line_table_and_request_lines_then_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit.sim", "--port", "0", "--speed", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:")
        url = first.split()[-1]
        table = [proc.stdout.readline() for _ in range(4)]
        assert table[0].split()[:2] == ["MODEL", "PARAMS"]
        assert [row.split()[0] for row in table[1:]] == [
            "llama3.2:3b",
            "qwen2.5:0.5b",
            "deepseek-r1:1.5b",
        ]
        httpx.post(
            url + "/api/generate", json={"model": "qwen2.5:0.5b", "prompt": "hi"}, timeout=20
        )
        line = ""
        while "/api/generate" not in line:
            line = proc.stdout.readline()
        stamp, *rest = line.split()
        assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", stamp)  # the wall-clock arrival time
        assert rest[:4] == ["POST", "/api/generate", "qwen2.5:0.5b", "200"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_cli_sigint_is_a_clean_stop() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit.sim", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("listening on ")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(10) == 0
    assert proc.stdout.read() == ""  # --quiet: nothing but the listening line
    proc.stdout.close()


def test_cli_bad_arguments_exit_2() -> None:
    bad_fault = run_cli("--port", "0", "--fault", "llama3.2:3b:explode")
    assert bad_fault.returncode == 2 and "explode" in bad_fault.stderr
    unknown_model = run_cli("--port", "0", "--fault", "nope:busy")
    assert unknown_model.returncode == 2 and "nope" in unknown_model.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = run_cli("--port", str(sock.getsockname()[1]))
    assert taken.returncode == 2 and "--port 0" in taken.stderr


def test_cli_zh_tw_messages() -> None:
    import os

    env = {**_env(), "LANG": "zh_TW.UTF-8"}
    result = subprocess.run(
        [sys.executable, "-m", "ollamakit.sim", "--fault", "x:explode"],
        capture_output=True,
        text=True,
        timeout=20,
        env={k: v for k, v in env.items() if k != "LC_ALL"} | {"OLLAMAKIT_LANG": "zh-TW"},
    )
    assert result.returncode == 2 and "故障設定" in result.stderr
    assert os.environ.get("OLLAMAKIT_LANG") is None  # the test did not leak its setting


CONFIG_TOML = """
version = "0.11.4"
num_parallel = 2
max_queue = 8
speed = 2
keep_alive = "10m"
origins = ["https://ui.example.com"]

[[models]]
name = "tiny:1b"
family = "gemma3"
parameter_size = "999.89M"
quantization = "Q4_K_M"
size = 815319791
thinking = true
load_ms = 10
prompt_tps = 5000
eval_tps = "inf"
reply_tokens = 3
thinking_tokens = 2
faults = ["error_after=4", {kind = "slow_headers_ms", arg = 1}]
"""


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_config_files(tmp_path: Path, suffix: str) -> None:
    import tomllib

    import yaml

    data = tomllib.loads(CONFIG_TOML)
    path = tmp_path / f"sim{suffix}"
    if suffix == ".toml":
        path.write_text(CONFIG_TOML)
    elif suffix == ".yaml":
        path.write_text(yaml.safe_dump(data))
    else:
        path.write_text(json.dumps(data))
    config = load_config_file(path)
    assert (config.version, config.num_parallel, config.max_queue, config.speed) == (
        "0.11.4",
        2,
        8,
        2.0,
    )
    assert config.keep_alive_ns == 600 * 10**9 and config.origins == ("https://ui.example.com",)
    (model,) = config.models
    assert model.fast and model.thinking and model.reply_length == 3
    assert [(f.kind, f.arg) for f in model.faults] == [
        (FaultKind.ERROR_AFTER, 4),
        (FaultKind.SLOW_HEADERS_MS, 1),
    ]
    assert SimConfig.from_dict(config.to_dict()) == config  # round-trips (for subprocesses)
    with run_in_thread(config) as sim:
        lines = raw(
            sim.url, "POST", "/api/generate", body={"model": "tiny:1b", "prompt": "x"}
        ).lines
        assert len(lines) == 5 and "error" in lines[-1]  # 2 thinking + 2 answer, then the error
        assert raw(sim.url, "GET", "/api/version").lines[0] == {"version": "0.11.4"}


def test_bad_config_files_name_the_problem(tmp_path: Path) -> None:
    from ollamakit.errors import ConfigError, UsageError

    bad_key = tmp_path / "a.toml"
    bad_key.write_text('[[models]]\nname = "x"\nspeeed = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config_file(bad_key)
    assert "speeed" in info.value.message
    bad_syntax = tmp_path / "b.json"
    bad_syntax.write_text("{")
    with pytest.raises(UsageError):
        load_config_file(bad_syntax)
    with pytest.raises(UsageError):
        load_config_file(tmp_path / "missing.toml")
    result = run_cli("--config", str(bad_key))
    assert result.returncode == 2 and "speeed" in result.stderr


def test_model_flag_replaces_defaults_and_flags_override_the_file(tmp_path: Path) -> None:
    import argparse

    from ollamakit.sim.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(
        parser.parse_args(["--model", "a:1b,eval_tps=10", "--num-parallel", "3"])
    )
    assert [m.name for m in config.models] == ["a:1b"] and config.num_parallel == 3
    path = tmp_path / "c.toml"
    path.write_text(CONFIG_TOML)
    args = parser.parse_args(
        ["--config", str(path), "--max-queue", "1", "--model", "b:2b", "--fault", "tiny:1b:busy"]
    )
    config = config_from_args(args)
    assert [m.name for m in config.models] == ["tiny:1b", "b:2b"]
    assert config.max_queue == 1 and config.num_parallel == 2
    assert config.models[0].fault(FaultKind.BUSY) is not None


# --- TLS and IPv6 -----------------------------------------------------------------------------


def test_tls_listener(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for pem in cert.cert_chain_pems[1:]:
        with cert_file.open("ab") as fh:
            fh.write(pem.bytes())
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with run_in_thread(tls_cert=cert_file, tls_key=key_file) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(ca_file))
        with httpx.Client(verify=context) as client:
            assert client.get(sim.url + "/").text == "Ollama is running"
            reply = client.post(sim.url + "/api/generate", json={"model": "qwen2.5:0.5b"})
            assert reply.json()["done_reason"] == "load"
        with pytest.raises(httpx.ConnectError), httpx.Client() as untrusting:
            untrusting.get(sim.url + "/")


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_listener() -> None:
    with run_in_thread(host="::1") as sim:
        assert sim.url.startswith("http://[::1]:")
        assert httpx.get(sim.url + "/").text == "Ollama is running"
        # [::1] is loopback: the Host check applies there too.
        assert raw(sim.url, "GET", "/", host="ollama.example.com").status == 403


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_out_of_range_is_a_usage_error(port: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ollamakit.sim", "--port", port, "--quiet"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    assert proc.returncode == 2
    assert f"Invalid port {port}: use a number from 0 to 65535" in proc.stderr
    assert "listening on" not in proc.stdout
