"""The recorder's rules from made-up timestamps: formulas, thinking, degenerate values, outcomes."""

from __future__ import annotations

import pytest

from ollamakit.domain import FinalStats, StreamChunk
from ollamakit.measure.recorder import (
    PROMPT_TPS_MIN_TOKENS,
    ReplyMeasurement,
    ReplyRecorder,
    rate_per_s,
)
from ollamakit.measure.schema import Identity

MS = 1_000_000
IDENT = Identity("m:latest", "p", "cat", 0, 1)


def C(t_ms: float, content: str = "", thinking: str = "", final: FinalStats | None = None,
      created_ms: float | None = None) -> StreamChunk:  # fmt: skip
    created = None if created_ms is None else int(created_ms * MS)
    return StreamChunk(int(t_ms * MS), content, thinking, final, created)


def record(chunks: list[StreamChunk], sent_ms: float = 0, **kwargs: object) -> ReplyMeasurement:
    recorder = ReplyRecorder(int(sent_ms * MS), rtt_ms=kwargs.pop("rtt_ms", None))  # type: ignore[arg-type]
    for chunk in chunks:
        recorder.add(chunk)
    return recorder.finish(**kwargs)  # type: ignore[arg-type]


def test_server_rates_are_count_over_duration_like_ollama_verbose() -> None:
    # The chat example from Ollama's docs/api.md, with a prompt long enough for a prefill rate.
    final = FinalStats("stop", 4883.583458, 1.334875, 2600, 342.546, None, 282, 4535.599)
    m = record([C(100, "a"), C(4900, final=final)])
    r = m.to_result(IDENT)
    assert r["prompt_tps"] == pytest.approx(2600 / 0.342546, abs=1e-3)
    assert r["eval_tps"] == pytest.approx(282 / 4.535599, abs=1e-3)
    assert r["load_ms"] == pytest.approx(1.334875)
    assert r["server_total_ms"] == pytest.approx(4883.583458, abs=1e-4)
    assert r["network_ms"] == pytest.approx(4900 - 4883.583458, abs=1e-3)
    assert r["done_reason"] == "stop"
    assert r["end"] == "done"
    assert m.eval_count == 282


def test_prefill_rate_only_where_measurable() -> None:
    short = FinalStats(prompt_eval_count=PROMPT_TPS_MIN_TOKENS - 1, prompt_eval_ms=10.0)
    m = record([C(5, "a", final=short)])
    assert (m.prompt_tps, m.prompt_tps_absent) == (None, "short_prompt")
    assert m.to_result(IDENT)["prompt_tps_absent"] == "short_prompt"
    # The server says how much came from the cache: only the evaluated tokens count.
    cached = FinalStats(prompt_eval_count=100, prompt_eval_ms=20.0, prompt_cached_count=60)
    assert record([C(5, "a", final=cached)]).prompt_tps == pytest.approx(2000.0)
    everything = FinalStats(prompt_eval_count=100, prompt_eval_ms=0.5, prompt_cached_count=100)
    assert record([C(5, "a", final=everything)]).prompt_tps_absent == "cached"


def test_client_timings_and_decode_rate() -> None:
    arrivals = [125, 135, 145, 160]
    chunks = [C(t, "x") for t in arrivals]
    chunks.append(C(200, final=FinalStats(eval_count=5, eval_ms=80.0)))
    m = record(chunks, sent_ms=5)
    assert m.ttft_ms == 120.0
    assert m.first_token_ms == 120.0
    assert m.total_ms == 195.0
    assert m.tpot_ms == pytest.approx((195 - 120) / 4)
    assert m.decode_tps == pytest.approx(1000 / ((195 - 120) / 4))
    assert m.eval_tps == pytest.approx(62.5)  # the server's figure, shown apart
    # gaps between token-bearing chunks only: 10, 10, 15
    assert m.itl_ms.p50 == 10.0
    assert m.itl_ms.p99 == pytest.approx(14.9)
    assert (m.ttft_thinking_ms, m.thinking_chunks, m.reads, m.chunks) == (None, 0, 5, 5)


def test_thinking_is_not_the_answer_but_starts_the_decode_window() -> None:
    chunks = [
        C(50, thinking="hmm"),
        C(60, thinking="so"),
        C(70, "Answer"),
        C(80, "."),
        C(81, final=FinalStats(eval_count=4, eval_ms=30.0)),
    ]
    m = record(chunks)
    assert (m.ttft_thinking_ms, m.ttft_ms, m.first_token_ms) == (50.0, 70.0, 50.0)
    assert m.thinking_chunks == 2
    assert m.tpot_ms == pytest.approx((81 - 50) / 3)


def test_text_on_the_final_chunk_counts() -> None:
    m = record([C(30, "Hello", final=FinalStats(eval_count=1, eval_ms=1.0))])
    assert (m.ttft_ms, m.total_ms, m.token_chunks) == (30.0, 30.0, 1)


def test_missing_stats_stay_null() -> None:
    r = record([C(10, "hi"), C(11, final=FinalStats())]).to_result(IDENT)
    for key in ("load_ms", "prompt_eval_count", "eval_count", "server_total_ms", "prompt_tps",
                "eval_tps", "tpot_ms", "e2e_tps", "network_ms", "done_reason"):  # fmt: skip
        assert r[key] is None, key  # type: ignore[literal-required]
    assert r["ok"] is True
    assert (r["ttft_ms"], r["total_ms"]) == (10.0, 11.0)


@pytest.mark.parametrize(
    ("count", "duration_ms"),
    [(1, 0.0), (5, 0.0), (1, 0.0005), (0, 10.0), (None, 10.0), (3, None), (3, float("nan"))],
)
def test_degenerate_rates_are_null(count: int | None, duration_ms: float | None) -> None:
    assert rate_per_s(count, duration_ms) is None


def test_sub_microsecond_eval_gives_no_rate() -> None:
    m = record([C(10, "Hi"), C(10, final=FinalStats(eval_count=1, eval_ms=0.0))])
    assert (m.tpot_ms, m.decode_tps, m.eval_tps) == (None, None, None)


def test_negative_network_time_is_kept() -> None:
    m = record([C(10, "a"), C(20, final=FinalStats(total_ms=20.3))])
    assert m.network_ms == pytest.approx(-0.3)


def test_client_overhead_is_network_time_beyond_one_round_trip() -> None:
    m = record([C(10, "a"), C(30, final=FinalStats(total_ms=20.0))], rtt_ms=1.5)
    assert m.network_ms == pytest.approx(10.0)
    assert m.client_overhead_ms == pytest.approx(8.5)
    assert m.to_result(IDENT)["client_overhead_ms"] == pytest.approx(8.5)
    assert record([C(10, "a"), C(30, final=FinalStats(total_ms=20.0))]).client_overhead_ms is None


def test_failed_request_keeps_only_what_was_observed() -> None:
    m = record([C(10, "a"), C(20, "b")], error="cut")
    assert (m.end, m.ok) == ("error", False)
    r = m.to_result(IDENT)
    assert (r["ok"], r["error"], r["ttft_ms"], r["total_ms"], r["eval_tps"]) == (
        False, "cut", 10.0, None, None)  # fmt: skip


def test_repeat_guard_ending_is_its_own_outcome() -> None:
    m = record([C(10, "a"), C(20, "b")], end="clean_eof")
    assert (m.end, m.ok, m.final, m.total_ms) == ("clean_eof", True, None, 20.0)
    r = m.to_result(IDENT)
    assert (r["ok"], r["end"], r["total_ms"], r["eval_tps"]) == (True, "clean_eof", 20.0, None)


def test_a_stream_that_stopped_without_a_word_is_cut() -> None:
    m = record([C(10, "a")])
    assert (m.end, m.ok, m.to_result(IDENT)["ok"]) == ("cut", False, False)


def _reply(arrivals_ms: list[float], eval_ms: float, created_step_ms: float | None = None):  # type: ignore[no-untyped-def]
    chunks = [
        C(t, "w", created_ms=None if created_step_ms is None else i * created_step_ms)
        for i, t in enumerate(arrivals_ms)
    ]
    chunks.append(C(arrivals_ms[-1], final=FinalStats(eval_count=len(chunks), eval_ms=eval_ms)))
    return record(chunks)


def test_a_buffering_proxy_is_flagged() -> None:
    # 20 tokens made over 400 ms by the server, delivered in one read at 931 ms.
    m = _reply([931.0] * 20, eval_ms=400.0)
    assert m.buffered and m.reads == 1
    assert m.ttft_ms == 931.0  # kept, but not presented as a TTFT
    assert m.shown_ttft_ms is None
    assert m.to_result(IDENT)["buffered"] is True
    # two reads, created_at spread says 20 × 20 ms
    assert _reply([500.0] * 10 + [501.0] * 10, eval_ms=0.0, created_step_ms=20.0).buffered


def test_a_fast_local_server_is_not_a_buffering_proxy() -> None:
    assert not _reply([5.0] * 20, eval_ms=2.0).buffered  # everything made in 2 ms: honest
    assert not _reply([100.0 + 20 * i for i in range(20)], eval_ms=400.0).buffered  # streamed
    assert not _reply([931.0] * 3, eval_ms=400.0).buffered  # too short to tell


def test_the_bench_progress_line_does_not_call_a_buffered_wait_a_ttft() -> None:
    from ollamakit.bench.cli import describe

    held = _reply([931.0] * 20, eval_ms=400.0).to_result(IDENT)
    streamed = _reply([100.0 + 20 * i for i in range(20)], eval_ms=400.0).to_result(IDENT)
    assert "TTFT" not in describe(held) and "buffering" in describe(held)
    assert "TTFT 100.0 ms" in describe(streamed)
