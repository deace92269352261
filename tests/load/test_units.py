"""The load engine, dataset, analysis and renderers without a server (a fake ``send``)."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

from ollamakit.errors import UsageError
from ollamakit.load.analysis import answer, parse_slo, summarize_levels
from ollamakit.load.dataset import load_dataset, messages_for
from ollamakit.load.document import finish_document, new_document, result_of
from ollamakit.load.engine import NS_PER_S, Engine, Level, LoadRequest, Outcome, Schedule
from ollamakit.load.render import render_csv, render_html, render_markdown


def _fake_send(service_s: float, active: list[int], peak: list[int]) -> Any:
    async def send(request: LoadRequest) -> Outcome:
        sent = time.perf_counter_ns()
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        await asyncio.sleep(service_s)
        active[0] -= 1
        end = time.perf_counter_ns()
        return Outcome(True, sent, end, ttft_ms=5.0, tpot_ms=1.0, total_ms=(end - sent) / 1e6,
                       eval_count=10)  # fmt: skip

    return send


def test_closed_loop_keeps_exactly_u_requests_in_flight() -> None:
    active, peak = [0], [0]
    engine = Engine(
        _fake_send(0.02, active, peak), lambda n, u: "item", Schedule(duration_s=0.3, ramp_s=0.05)
    )
    run = asyncio.run(engine.run_level(Level("users", 3)))
    assert peak[0] == 3
    by_user: dict[int | None, list[Any]] = {}
    for s in run.samples:
        by_user.setdefault(s.request.user, []).append(s)
    assert sorted(by_user) == [0, 1, 2]
    for samples in by_user.values():  # each user waits for its reply before the next request
        for a, b in itertools.pairwise(sorted(samples, key=lambda s: s.outcome.sent_ns)):
            assert b.outcome.sent_ns >= a.outcome.end_ns
    assert {s.phase for s in run.samples} == {"ramp", "measure"}


def test_open_loop_plans_the_seeded_poisson_schedule() -> None:
    from ollamakit.load.engine import poisson_offsets_s

    active, peak = [0], [0]
    schedule = Schedule(duration_s=0.5, seed=11)
    engine = Engine(_fake_send(0.05, active, peak), lambda n, u: "item", schedule)
    run = asyncio.run(engine.run_level(Level("rate", 40)))
    planned = sorted(s.request.planned_ns - run.started_ns for s in run.samples)
    expected = [int(t * NS_PER_S) for t in poisson_offsets_s(40, 0.5, 11)]
    assert planned == expected
    assert peak[0] > 1  # requests overlap: arrivals do not wait for replies


def test_slo_goodput_and_answer_from_samples() -> None:
    active, peak = [0], [0]
    engine = Engine(_fake_send(0.01, active, peak), lambda n, u: "i", Schedule(duration_s=0.2))
    runs = asyncio.run(engine.run([Level("users", 1), Level("users", 2)]))
    rows = summarize_levels(runs, parse_slo("ttft_p95=10ms"))
    assert all(r["sustained"] for r in rows)
    assert answer(rows, parse_slo("ttft_p95=10ms"))["sustained"] == 2
    strict = summarize_levels(runs, parse_slo("ttft_p95=1ms"))
    assert not any(r["sustained"] for r in strict) and strict[0]["goodput_rps"] == 0


def test_shipped_dataset_is_varied(tmp_path: Path) -> None:
    team = load_dataset(None)
    categories = {i.category for i in team.items}
    assert {"chat", "coding", "summarisation", "zh-TW"} <= categories
    assert any(i.turns > 1 for i in team.items)
    lengths = [sum(len(m["content"]) for m in i.messages) for i in team.items]
    assert max(lengths) > 20 * min(lengths)
    assert load_dataset("suite").items


def test_dataset_files_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '# comment\n{"prompt": "Hi", "max_tokens": 5}\n\n'
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},'
        ' {"role": "user", "content": "c"}], "id": "conv"}\n',
        encoding="utf-8",
    )
    items = load_dataset(str(jsonl)).items
    assert [i.id for i in items] == ["d-2", "conv"] and items[0].max_tokens == 5
    assert messages_for(items[1], "m")[0]["content"] == "[m] a"
    csv_file = tmp_path / "d.csv"
    csv_file.write_text('id,prompt,category\nq1,"Hello, world",chat\n', encoding="utf-8")
    assert load_dataset(str(csv_file)).items[0].messages[0]["content"] == "Hello, world"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}\n')
    with pytest.raises(UsageError, match=r"bad\.jsonl, entry 1"):
        load_dataset(str(bad))


def test_renderers_escape_and_chart() -> None:
    active, peak = [0], [0]
    engine = Engine(_fake_send(0.01, active, peak), lambda n, u: "i", Schedule(duration_s=0.2))
    runs = asyncio.run(engine.run([Level("users", 1), Level("users", 2)]))
    model = "<b>evil|model</b>"
    doc = new_document(run_id="r1", label=None, base_url="http://h", version="0",
                       config={"models": [model]})  # fmt: skip
    for run in runs:
        doc["results"].extend(result_of(s, model, run) for s in run.samples)
    finish_document(doc, runs, parse_slo("ttft_p95=10ms"), interrupted=False)
    html = render_html(doc)
    assert html.count("<svg") == 2 and "<b>evil" not in html and "&lt;b&gt;evil" in html
    assert "sustains 2 concurrent users" in html
    csv_text = render_csv(doc)
    assert csv_text.splitlines()[0].startswith("run_id,model,level")
    assert len(csv_text.splitlines()) == 3
    assert "<b>" not in render_markdown(doc)


def test_a_level_runs_with_a_frozen_heap_and_rare_full_collections() -> None:
    import gc

    seen: list[tuple[int, int]] = []

    async def send(request: LoadRequest) -> Outcome:
        seen.append((gc.get_threshold()[2], gc.get_freeze_count()))
        now = time.perf_counter_ns()
        return Outcome(True, now, now)

    before = gc.get_threshold()
    gc.unfreeze()
    try:
        engine = Engine(send, lambda n, u: "item", Schedule(duration_s=0.05))
        asyncio.run(engine.run_level(Level("users", 1)))
        assert seen and all(t2 >= 1000 and frozen > 0 for t2, frozen in seen)
        assert gc.get_threshold() == before  # restored after the level
        gc.unfreeze()
        seen.clear()
        engine = Engine(send, lambda n, u: "item", Schedule(duration_s=0.05), freeze_gc=False)
        asyncio.run(engine.run_level(Level("users", 1)))
        assert seen and all(t2 == before[2] and frozen == 0 for t2, frozen in seen)
    finally:
        gc.unfreeze()
