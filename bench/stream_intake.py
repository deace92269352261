"""How fast can each client take in an Ollama stream? (issue: "Fast intake")

The simulator (in its own process, so it does not share our GIL) streams one ``/api/generate``
reply of N chunks as fast as it can (``eval_tps=inf``). In the same run we time, on that same
stream:

* ``curl``                  the transport ceiling: bytes to /dev/null, no parsing;
* ``httpx iter_raw``        our HTTP stack reading bytes, no parsing (the Python ceiling);
* ``httpx iter_lines+json`` the naive way to parse NDJSON with httpx;
* ``ollamakit sync``        ``OllamaClient.stream_generate`` (what chat/doctor use);
* ``ollamakit async``       ``AsyncOllamaClient.stream_generate`` (what the benchmark uses);
* ``benchmark path``        what ``Runner._request`` does per reply: the async backend's
  ``stream_chat(ChatRequest)`` with every chunk into a :class:`ReplyRecorder` and the
  measurement finished (issue 8's target: at most 2.5x curl's time);
* ``ollama (official)``     ``ollama.Client().generate(stream=True)``.

Each is run ``--repeat`` times; the table shows the median chunks/s and ratios against the
official client and curl measured in this same run (machines are noisy: only ratios from one
run mean anything). Targets: ollamakit ≥ 250,000 chunks/s and ≥ 5x the official client.

    uv run python bench/stream_intake.py [--chunks 200000] [--repeat 5] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import ollama

from ollamakit.client import AsyncOllamaBackend, AsyncOllamaClient, OllamaClient
from ollamakit.config import Settings, parse_base_url
from ollamakit.domain import ChatRequest
from ollamakit.measure import Identity, ReplyRecorder
from ollamakit.sim import start_subprocess

MODEL = "fast:1b"


def _settings(url: str) -> Settings:
    return Settings(base_url=parse_base_url(url), home=Path("/tmp/ollamakit-bench"))


def _body() -> dict[str, object]:
    return {"model": MODEL, "prompt": "count", "stream": True}


def run_curl(url: str, expected: int) -> int:
    curl = shutil.which("curl")
    if curl is None:
        raise RuntimeError("curl not found")
    out = subprocess.run(
        [curl, "-sS", "-N", "-d", json.dumps(_body()), f"{url}/api/generate"],
        check=True,
        capture_output=True,
    ).stdout
    return out.count(b"\n")


def run_httpx_raw(url: str, expected: int) -> int:
    lines = 0
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{url}/api/generate", json=_body()) as response,
    ):
        for data in response.iter_raw():
            lines += data.count(b"\n")
    return lines


def run_httpx_lines(url: str, expected: int) -> int:
    count = 0
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", f"{url}/api/generate", json=_body()) as response,
    ):
        for line in response.iter_lines():
            if line:
                json.loads(line)
                count += 1
    return count


def run_ollamakit_sync(url: str, expected: int) -> int:
    count = 0
    with OllamaClient(_settings(url)) as client, client.stream_generate(MODEL, "count") as stream:
        for _chunk in stream:
            count += 1
    return count


def run_ollamakit_async(url: str, expected: int) -> int:
    async def main() -> int:
        count = 0
        async with (
            AsyncOllamaClient(_settings(url)) as client,
            client.stream_generate(MODEL, "count") as stream,
        ):
            async for _chunk in stream:
                count += 1
        return count

    return asyncio.run(main())


def run_benchmark_path(url: str, expected: int) -> int:
    async def main() -> int:
        request = ChatRequest(MODEL, ({"role": "user", "content": "count"},))
        async with AsyncOllamaBackend(_settings(url)) as backend:
            stream = backend.stream_chat(request)
            async with stream:
                recorder = ReplyRecorder(stream.sent_ns)
                await stream.read_into(recorder.chunks)  # as Runner._request does
            result = recorder.finish(stream.end).to_result(Identity(MODEL, "p", "c", 0, 1))
        assert result["ok"], result["error"]
        return len(recorder.chunks)

    return asyncio.run(main())


def run_official(url: str, expected: int) -> int:
    count = 0
    client = ollama.Client(host=url)
    for _part in client.generate(model=MODEL, prompt="count", stream=True):
        count += 1
    return count


CLIENTS: list[tuple[str, str, Callable[[str, int], int]]] = [
    ("curl", "curl (no parsing)", run_curl),
    ("raw", "httpx iter_raw (no parsing)", run_httpx_raw),
    ("lines", "httpx iter_lines + json.loads", run_httpx_lines),
    ("sync", "ollamakit sync client", run_ollamakit_sync),
    ("async", "ollamakit async client", run_ollamakit_async),
    ("bench", "benchmark path (backend + recorder)", run_benchmark_path),
    ("official", "ollama (official client)", run_official),
]
KEYS = [key for key, _, _ in CLIENTS]


def measure(
    url: str, chunks: int, repeat: int, clients: list[tuple[str, Callable[[str, int], int]]]
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name, _ in clients}
    # Interleave the clients round by round so slow drifts of the machine hit all alike.
    for _ in range(repeat):
        for name, fn in clients:
            start = time.perf_counter()
            got = fn(url, chunks)
            elapsed = time.perf_counter() - start
            if got != chunks + 1:  # N answer chunks + the final done chunk
                raise SystemExit(f"{name}: got {got} chunks, expected {chunks + 1}")
            rates[name].append(got / elapsed)
    return rates


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument(
        "--only",
        default=",".join(KEYS),
        help=f"comma-separated clients to run (curl is always run): {','.join(KEYS)}",
    )
    args = parser.parse_args(argv)
    wanted = {"curl", *args.only.split(",")}
    unknown = wanted - set(KEYS)
    if unknown:
        parser.error(f"unknown client(s): {', '.join(sorted(unknown))}")
    clients = [(name, fn) for key, name, fn in CLIENTS if key in wanted]

    sim = start_subprocess(["--model", f"{MODEL},eval_tps=inf,reply_tokens={args.chunks}"])
    try:
        run_ollamakit_sync(sim.url, args.chunks)  # warm the model and the page cache
        load_before = os.getloadavg()[0]
        rates = measure(sim.url, args.chunks, args.repeat, clients)
        load_after = os.getloadavg()[0]
    finally:
        sim.stop()

    median = {name: statistics.median(values) for name, values in rates.items()}
    official = median.get("ollama (official client)")
    curl = rates["curl (no parsing)"]
    rows = [
        (
            name,
            median[name],
            min(rates[name]),
            max(rates[name]),
            f"{median[name] / official:.2f}x" if official else "-",
            # Time per chunk against curl's, round by round: a ratio of the same round's
            # two runs, so a slow moment of the machine hits both.
            statistics.median(c / r for c, r in zip(curl, rates[name], strict=True)),
        )
        for name, _ in clients
    ]
    head = (
        f"{args.chunks:,} chunks x {args.repeat} runs, Python {sys.version.split()[0]}, "
        f"load average {load_before:.1f} before / {load_after:.1f} after"
    )
    if args.markdown:
        print(f"_{head}_\n")
        print("| client | chunks/s (median) | min | max | vs official | time vs curl (median) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, med, lo, hi, vs_off, vs_curl in rows:
            print(f"| {name} | {med:,.0f} | {lo:,.0f} | {hi:,.0f} | {vs_off} | {vs_curl:.2f}x |")
    else:
        print(head)
        print(
            f"{'client':36} {'median/s':>10} {'min/s':>10} {'max/s':>10} {'vs official':>12}"
            f" {'time vs curl':>13}"
        )
        for name, med, lo, hi, vs_off, vs_curl in rows:
            print(f"{name:36} {med:10,.0f} {lo:10,.0f} {hi:10,.0f} {vs_off:>12} {vs_curl:12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
