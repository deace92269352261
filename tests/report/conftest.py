"""Run documents built by hand, as the benchmark would produce them.

``make_doc()`` builds a realistic run: two models × five prompts × 3 runs at concurrency 1,
a concurrency sweep (2 and 4 streams of the greeting), a failed request (503), values that
cannot be known (``null``: a cached prompt has no prompt_eval_count), cold loads and a hint.
Figures are plausible for a 7B/3B model on a mid-range GPU behind a LAN proxy. ``speedup``
scales the decode rates (and shortens TTFT), to make a second run to compare with.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from ollamakit.measure.schema import ConcurrencyRow, RequestResult, RunDocument
from ollamakit.report.common import compute_summary, summarize_values
from ollamakit.store import HistoryStore

# eval tok/s, prompt tok/s, per-stream slowdown per extra parallel stream
MODELS = {
    "llama3.2:3b": (118.0, 2900.0, 0.3),
    "qwen2.5-coder:7b": (61.0, 1450.0, 0.9),  # flat: the server runs it 1-2 at a time
}
PROMPTS = [
    ("greeting", "chat", 12, 40),
    ("code", "coding", 60, 256),
    ("reasoning", "reasoning", 85, 256),
    ("long_summary", "prefill", 2048, 200),
    ("zh_tw", "chinese", 30, 180),
]


def _result(
    rng: random.Random,
    model: str,
    prompt: tuple[str, str, int, int],
    run_index: int,
    concurrency: int,
    speedup: float,
) -> RequestResult:
    prompt_id, category, n_prompt, n_eval = prompt
    eval_rate, prompt_rate, slowdown = MODELS[model]
    eval_tps = eval_rate * speedup * rng.uniform(0.97, 1.03) / (1 + slowdown * (concurrency - 1))
    prompt_tps = prompt_rate * speedup * rng.uniform(0.95, 1.05)
    prompt_ms = 1000 * n_prompt / prompt_tps
    eval_ms = 1000 * n_eval / eval_tps
    network = rng.uniform(1.2, 3.5)
    ttft = prompt_ms + 1000 / eval_tps + network + rng.uniform(5, 15) * concurrency
    server_total = prompt_ms + eval_ms + rng.uniform(0.5, 2)
    total = server_total + network
    tpot = (total - ttft) / (n_eval - 1)
    cached = prompt_id == "greeting" and run_index == 2  # prefix cache hit: Ollama omits it
    return {
        "model": model,
        "prompt_id": prompt_id,
        "category": category,
        "run_index": run_index,
        "concurrency": concurrency,
        "ok": True,
        "error": None,
        "ttft_ms": ttft,
        "total_ms": total,
        "load_ms": rng.uniform(8, 20),
        "prompt_eval_count": None if cached else n_prompt,
        "prompt_eval_ms": None if cached else prompt_ms,
        "eval_count": n_eval,
        "eval_ms": eval_ms,
        "server_total_ms": server_total,
        "prompt_tps": None if cached else prompt_tps,
        "eval_tps": eval_tps,
        "tpot_ms": tpot,
        "e2e_tps": 1000 / tpot,
        "network_ms": network,
        "itl_ms": {"p50": tpot * 0.98, "p95": tpot * 1.6, "p99": tpot * 2.4},
        "done_reason": "length" if n_eval == 256 else "stop",
        "started_at": f"2025-03-01T14:05:{10 + run_index:02d}.000+00:00",
    }


def _failed(model: str, prompt: tuple[str, str, int, int], run_index: int) -> RequestResult:
    return {
        "model": model,
        "prompt_id": prompt[0],
        "category": prompt[1],
        "run_index": run_index,
        "concurrency": 1,
        "ok": False,
        "error": "HTTP 503 Service Unavailable: server busy, queue full (OLLAMA_MAX_QUEUE)",
        "ttft_ms": None,
        "total_ms": 12.4,
        "load_ms": None,
        "prompt_eval_count": None,
        "prompt_eval_ms": None,
        "eval_count": None,
        "eval_ms": None,
        "server_total_ms": None,
        "prompt_tps": None,
        "eval_tps": None,
        "tpot_ms": None,
        "e2e_tps": None,
        "network_ms": None,
        "itl_ms": {"p50": None, "p95": None, "p99": None},
    }


def make_doc(
    *,
    run_id: str = "3f9a2c7e41d84b0c",
    label: str | None = "rtx4070 behind nginx",
    speedup: float = 1.0,
    seed: int = 7,
    models: list[str] | None = None,
    failed: bool = True,
    sweep: bool = True,
    status: str = "complete",
) -> RunDocument:
    rng = random.Random(seed)
    models = models or list(MODELS)
    results: list[RequestResult] = []
    for model in models:
        known = model if model in MODELS else "llama3.2:3b"
        for prompt in PROMPTS:
            for run_index in range(3):
                if (
                    failed
                    and known == "qwen2.5-coder:7b"
                    and prompt[0] == "long_summary"
                    and (run_index == 1)
                ):
                    results.append(_failed(model, prompt, run_index))
                    continue
                r = _result(rng, known, prompt, run_index, 1, speedup)
                r["model"] = model
                results.append(r)
    conc_rows: list[ConcurrencyRow] = []
    if sweep:
        for model in models:
            known = model if model in MODELS else "llama3.2:3b"
            for level in (1, 2, 4):
                batch = []
                for i in range(level):
                    r = _result(rng, known, PROMPTS[0], i, level, speedup)
                    r["model"] = model
                    batch.append(r)
                if level > 1:
                    results.extend(batch)
                else:  # level 1 is the first greeting of the main runs
                    batch = [
                        next(
                            r
                            for r in results
                            if r["model"] == model and r["prompt_id"] == "greeting"
                        )
                    ]
                wall_s = max(cast(float, r["total_ms"]) for r in batch) / 1000
                tokens = sum(cast(int, r["eval_count"]) for r in batch)
                conc_rows.append(
                    {
                        "model": model,
                        "concurrency": level,
                        "requests": len(batch),
                        "ok": len(batch),
                        "wall_s": wall_s,
                        "requests_per_s": len(batch) / wall_s,
                        "output_tps": tokens / wall_s,
                        "ttft_ms": summarize_values(r["ttft_ms"] for r in batch),
                        "itl_p95_ms": summarize_values(r["itl_ms"]["p95"] for r in batch),
                    }
                )
    doc: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id,
        "label": label,
        "status": status,
        "started_at": "2025-03-01T14:05:09.412345+00:00",
        "finished_at": "2025-03-01T14:09:41.902112+00:00",
        "tool": {"name": "ollamakit", "version": "0.1.0"},
        "server": {
            "base_url": "https://ollama-user:***@gpu.example.com",
            "version": "0.6.2",
            "rtt_ms": {"median": 1.84, "p95": 3.1},
        },
        "config": {
            "runs": 3,
            "warmup": 1,
            "concurrency": [1, 2, 4] if sweep else [1],
            "num_predict": 256,
            "seed": 42,
            "suite": "default",
            "models": models,
            "prompts": [p[0] for p in PROMPTS],
            "timeout_s": 300.0,
            "temperature": 0.0,
        },
        "results": results,
        "summary": compute_summary(results),
        "cold_loads": [{"model": models[0], "load_ms": 2143.7}]
        + [{"model": m, "load_ms": None} for m in models[1:]],
        "hints": [
            "qwen2.5-coder:7b: aggregate output stops growing beyond 2 parallel requests; "
            "the server may run with OLLAMA_NUM_PARALLEL=2."
        ]
        if sweep
        else [],
    }
    if sweep:
        doc["concurrency_summary"] = conc_rows
    return cast(RunDocument, doc)


@pytest.fixture
def doc() -> RunDocument:
    return make_doc()


@pytest.fixture
def doc_factory() -> Callable[..., RunDocument]:
    return make_doc


def fill_store(home: Path) -> list[RunDocument]:
    """Three runs: A (baseline), B (faster, later), C (crashed: two results, never finished)."""
    a = make_doc(run_id="3f9a2c7e41d84b0c", label="baseline")
    b = make_doc(run_id="7b01d4e9aa3c5f21", label="after driver update", speedup=1.2, seed=8)
    c = make_doc(run_id="7b9e0000c0ffee00", label="crashed", status="running", sweep=False)
    with HistoryStore.open(home) as store:
        store.save_run(a)
        store.save_run(b)
        header = cast(RunDocument, {**c, "results": [], "summary": [], "finished_at": None})
        store.begin_run(header)
        for result in c["results"][:2]:
            store.add_result(c["run_id"], result)
    return [a, b, c]


@pytest.fixture
def filled_home(isolated_env: Path) -> tuple[Path, list[RunDocument]]:
    """``OLLAMAKIT_HOME`` (already set by the root conftest) with three saved runs."""
    return isolated_env, fill_store(isolated_env)
