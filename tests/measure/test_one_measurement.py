"""The must-show test of issue 8: one reply, one measurement, in every tool.

The same recorded streams (plain, thinking, no stats, an error mid-stream, and a reply held
back by a buffering proxy) are served as real bytes from a raw-socket server on 127.0.0.1 and
read through the real code paths of the bench (``Runner``), the chat (``ChatApp.send``),
``chat --auto`` (``greet``) and the doctor (``check_generate``). Every path must report the
same TTFT (the first *answer* text, never the first thinking text), the same server rate and
the same client decode rate, and flag the same buffered reply.

Server figures come from the final chunk, so they must be exactly equal. Client figures are
stamps of separate requests over a real socket, so they agree within the scheduling noise of a
busy machine (:data:`TOLERANCE_MS`); the rule itself is checked exactly by the lower bound:
no tool may report a TTFT before the first answer chunk was even written (the thinking
stream's first thinking chunk comes 340 ms earlier, which the old rules of three tools took).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from ollamakit.bench.runner import BenchPlan, NullSink, Runner
from ollamakit.bench.suites import Prompt, Suite
from ollamakit.chat.auto import _Printer, greet
from ollamakit.chat.render import PlainReplyView, stats_line
from ollamakit.chat.repl import ChatApp
from ollamakit.chat.session import ChatSession, ReplyStats
from ollamakit.chat.transcript import Transcript
from ollamakit.client import AsyncOllamaBackend, AsyncOllamaClient, OllamaClient
from ollamakit.config import Flags, Settings, load_settings
from ollamakit.diagnostics import Status, check_generate

from .replay import Piece, ReplayServer, Script, Step, replay, streamed

TOLERANCE_MS = 100.0
MS = 1_000_000


def final(eval_count: int | None, eval_ms: float | None, total_ms: float | None) -> dict[str, Any]:
    figures: dict[str, Any] = {"done_reason": "stop"}
    if eval_count is not None:
        figures |= {"eval_count": eval_count, "prompt_eval_count": 30}
        figures["prompt_eval_duration"] = 40 * MS
        figures["load_duration"] = 2 * MS
    if eval_ms is not None:
        figures["eval_duration"] = int(eval_ms * MS)
    if total_ms is not None:
        figures["total_duration"] = int(total_ms * MS)
    return figures


def words(start_ms: float, step_ms: float, n: int, **kw: str) -> list[Piece]:
    return [Piece(start_ms + i * step_ms, **({"content": f"w{i} "} | kw)) for i in range(n)]


SCRIPTS: dict[str, Script] = {
    "plain": Script(streamed(*words(80, 30, 5), Piece(205, final=final(6, 120.0, 190.0)))),
    "thinking": Script(
        streamed(
            *words(60, 30, 2, thinking="hmm ", content=""),
            *words(400, 30, 3),
            Piece(465, final=final(6, 400.0, 455.0)),
        )
    ),
    "nostats": Script(streamed(*words(80, 30, 3), Piece(145, final={}))),
    "error": Script(streamed(*words(80, 30, 2), Piece(140, error="model runner crashed"))),
    # Ollama's token-repeat guard: the body ends cleanly, without a done line
    "repeat": Script(streamed(*words(80, 30, 4))),
    # made over 400 ms, delivered in one write at 450 ms
    "buffered": Script(
        (Step(450, (*words(0, 20, 20), Piece(405, final=final(21, 400.0, 420.0)))),)
    ),
}

EXPECTED_TTFT_MS = {
    "plain": 80,
    "thinking": 400,
    "nostats": 80,
    "error": 80,
    "repeat": 80,
    "buffered": 450,
}
NO_SERVER_RATE = ("nostats", "error", "repeat")
DECODE_TOKENS = {"plain": 6, "thinking": 6}  # the scripts' eval_count


@dataclass(frozen=True)
class Seen:
    """What one tool showed about the reply."""

    ok: bool
    ttft_ms: float | None
    eval_tps: float | None
    decode_tps: float | None
    buffered: bool
    end: str | None = None  # where the tool records it


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayServer]:
    with replay(SCRIPTS) as running:
        # Each path once, unmeasured: first-use costs (lazy imports, rich's tables) run in the
        # consumer while a stream is being read and would delay its stamps once.
        home = tmp_path_factory.mktemp("warm")
        via_chat(running.url, "plain", home), via_bench(running.url, "plain")
        via_auto(running.url, "plain"), via_doctor(running.url, "plain")
        yield running


def settings(url: str) -> Settings:
    return load_settings(Flags(base_url=url), environ={})


def via_bench(url: str, model: str) -> Seen:
    suite = Suite(name="one", prompts=(Prompt("hi", "greeting", "Hello there"),))
    plan = BenchPlan(models=(model,), suite=suite, runs=1, warmup=0, timeout_s=10)

    async def go() -> dict[str, Any]:
        async with AsyncOllamaBackend(settings(url)) as client:
            runner = Runner(client=client, plan=plan, base_url=url, sink=NullSink())
            doc = await runner.execute()
        [row] = doc["results"]
        return dict(row)

    r = asyncio.run(go())
    return Seen(r["ok"], r["ttft_ms"], r["eval_tps"], r["e2e_tps"], r["buffered"], r["end"])


class _Recording(PlainReplyView):
    stats: ReplyStats | None = None
    outcome: str = ""

    def finish(self, outcome: Any, stats: ReplyStats | None) -> None:
        self.outcome, self.stats = outcome, stats
        super().finish(outcome, stats)


def via_chat(url: str, model: str, home: Path) -> tuple[Seen, str]:
    home.mkdir(parents=True, exist_ok=True)
    view = _Recording(io.StringIO(), io.StringIO(), None)
    transcript = Transcript.create(home, model)
    with OllamaClient(settings(url)) as client, contextlib.closing(transcript):
        app = ChatApp(
            settings=settings(url),
            client=client,
            session=ChatSession(model),
            models=[],
            transcript=transcript,
            out=Console(file=io.StringIO()),
            view_factory=lambda name: view,
        )
        app.send("Hi")
    s = view.stats
    assert s is not None
    seen = Seen(view.outcome == "done", s.ttft_ms, s.eval_tps, s.decode_tps, s.buffered)
    return seen, stats_line(s, view.outcome)  # type: ignore[arg-type]


def via_auto(url: str, model: str) -> Seen:
    async def go() -> Any:
        async with AsyncOllamaClient(settings(url)) as client:
            printer = _Printer(Console(file=io.StringIO()))
            return await greet(client, model, [{"role": "user", "content": "Hi"}], 10, printer)

    r = asyncio.run(go())
    return Seen(r.status == "ok", r.ttft_ms, r.eval_tps, r.decode_tps, r.buffered)


def via_doctor(url: str, model: str) -> Seen | None:
    with OllamaClient(settings(url)) as client:
        result, gen = check_generate(client, [model])
    if gen is None:
        assert result.status is Status.FAIL
        return None
    return Seen(True, gen.ttft_ms, gen.eval_tps, gen.decode_tps, gen.buffered)


ATTEMPTS = 2


def _ttft(seen: Seen | tuple[Seen, str] | None) -> float:
    if isinstance(seen, tuple):
        seen = seen[0]
    return float("inf") if seen is None or seen.ttft_ms is None else seen.ttft_ms


@pytest.mark.parametrize(
    "model",
    list(SCRIPTS),
)
def test_every_tool_measures_a_reply_the_same_way(
    server: ReplayServer, model: str, tmp_path: Path
) -> None:
    # Scheduling noise only ever delays a stamp, so each tool keeps the earlier of two tries.
    chat, line = min(
        (via_chat(server.url, model, tmp_path / str(i)) for i in range(ATTEMPTS)), key=_ttft
    )
    seen = {
        "bench": min((via_bench(server.url, model) for _ in range(ATTEMPTS)), key=_ttft),
        "chat": chat,
        "auto": min((via_auto(server.url, model) for _ in range(ATTEMPTS)), key=_ttft),
    }
    doctor = min((via_doctor(server.url, model) for _ in range(ATTEMPTS)), key=_ttft)
    if model == "error":
        assert doctor is None  # the doctor's check fails; the others keep what they saw
    else:
        assert doctor is not None
        seen["doctor"] = doctor

    expected_ok = model != "error"
    assert {tool: s.ok for tool, s in seen.items()} == dict.fromkeys(seen, expected_ok)
    expected_end = {"error": "error", "repeat": "clean_eof"}.get(model, "done")
    assert seen["bench"].end == expected_end  # the repeat guard is its own outcome, not a cut

    # TTFT: the first answer text, the same in every tool
    ttfts = {tool: s.ttft_ms for tool, s in seen.items()}
    assert all(v is not None for v in ttfts.values()), ttfts
    values = [v for v in ttfts.values() if v is not None]
    assert max(values) - min(values) < TOLERANCE_MS, ttfts
    assert min(values) >= EXPECTED_TTFT_MS[model] - 1, ttfts  # never the thinking chunk
    assert max(values) < EXPECTED_TTFT_MS[model] + 2 * TOLERANCE_MS, ttfts

    # the server's rate: the same figures, the same rule, exactly equal
    rates = {tool: s.eval_tps for tool, s in seen.items()}
    assert len(set(rates.values())) == 1, rates
    if model in NO_SERVER_RATE:
        assert set(rates.values()) == {None}
    else:
        assert next(iter(rates.values())) is not None

    # the client's decode rate: the same rule (it needs eval_count)
    decodes = {tool: s.decode_tps for tool, s in seen.items()}
    if model in (*NO_SERVER_RATE, "buffered"):
        # no count, no end, or a zero-length decode window (one read): unknown, not made up
        assert set(decodes.values()) == {None}, decodes
    else:
        known = [v for v in decodes.values() if v is not None]
        assert len(known) == len(decodes), decodes
        # Compared as the decode windows they imply (eval_count - 1 tokens after the first),
        # with the TTFT's tolerance: a 125 ms window is where a busy machine's delay shows most.
        windows_ms = [(DECODE_TOKENS[model] - 1) * 1000 / v for v in known]
        assert max(windows_ms) - min(windows_ms) < TOLERANCE_MS, decodes

    # a buffering proxy is flagged by every tool, and the chat does not call it a first token
    assert {tool: s.buffered for tool, s in seen.items()} == dict.fromkeys(
        seen, model == "buffered"
    )
    if model == "buffered":
        assert "first token" not in line and "buffering" in line
