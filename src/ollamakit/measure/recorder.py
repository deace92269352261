"""One set of rules for measuring a streamed reply: :class:`ReplyRecorder`.

Bench, chat, ``chat --auto`` and the doctor all feed the chunks of a reply into a recorder and
read the same :class:`ReplyMeasurement` back, so the same stream gives the same TTFT and rates
in every tool. Nothing here does I/O or reads a clock: the client stamps every chunk
(``StreamChunk.arrival_ns``, ``perf_counter_ns`` of the socket read that delivered it) and the
stream's ``sent_ns``; the recorder only does arithmetic on those stamps, so every rule is tested
with made-up stamps (the doctests below and ``tests/measure``).

Client clock (perf_counter, ns → ms)
    ``ttft_ms``           sent → first chunk with *answer* text. Thinking is not an answer: a
                          thinking model's first thinking chunk is ``ttft_thinking_ms``, and
                          ``first_token_ms`` is whichever came first.
    ``total_ms``          sent → arrival of the last chunk (the last byte that matters).
    ``itl_ms``            p50/p95/p99 of the gaps between consecutive token-bearing chunks
                          (answer or thinking). Chunks delivered by one socket read share a
                          stamp, so a 0 ms gap is real: they were delivered together.
    ``tpot_ms``           (total − first token) / (eval_count − 1): the decode window starts at
                          the first token of *any* kind, because ``eval_count`` counts thinking
                          tokens too.
    ``decode_tps``        1000 / tpot_ms: **the honest decode rate**, as the client saw it
                          (the result document calls it ``e2e_tps``: docs/result-format.md).
    ``reads``             distinct arrival stamps: how many socket reads delivered the reply.

Server clock (``FinalStats``, ms)
    ``eval_tps``          eval_count / eval_ms, exactly ``ollama run --verbose``'s "eval rate".
                          It counts the first token, which is produced by the prefill, and since
                          Ollama 0.12.5 excludes sampling time, so it reads higher than the rate
                          the user gets; tools show it labelled "server" next to ``decode_tps``.
    ``prompt_tps``        prefill rate, only where it is measurable (below).
    ``network_ms``        total_ms − server total: the part of the wait the server's timer did
                          not see. Kept when slightly negative (two clocks; on coarse timers the
                          server's total can exceed the client's by a tick).

The prefill rate (issue 9, item 8)
    Ollama's ``prompt_eval_count`` counts the *whole* prompt, cached prefix included, while
    ``prompt_eval_duration`` covers only the tokens that were actually evaluated. Count over
    duration is then inflated by the cached share. The rule:

    * the server says how many tokens came from the cache (``prompt_cached_count``: llama.cpp,
      OpenAI ``cached_tokens``): the rate is (count − cached) / duration; everything cached
      gives no rate (``prompt_tps_absent = "cached"``);
    * it does not say (Ollama): the rate is reported only for prompts of at least
      :data:`PROMPT_TPS_MIN_TOKENS` tokens. The bench's run marker at the start of every prompt
      defeats the cache after the chat template's fixed prefix (a few dozen tokens at most),
      so from 512 tokens on the error is a few percent; below that it can be several times
      the truth, and the cell says why it is empty (``prompt_tps_absent = "short_prompt"``).

    ``prompt_tps_absent`` is ``None`` when there is a rate, else one of ``"no_stats"`` (the
    server sent no counts), ``"too_fast"`` (a duration under 1 µs is clock granularity),
    ``"cached"`` or ``"short_prompt"``.

Degenerate values become ``None``, never a made-up number: a missing or zero duration or count
gives no rate; a duration under :data:`MIN_RATE_DURATION_MS` (1 µs) gives no rate (1 token in
0 ns is not a billion tokens/s); ``tpot_ms`` needs ``eval_count ≥ 2`` and a positive window.

A buffering proxy (issue 9, item 5)
    nginx with ``proxy_buffering on`` holds the stream and delivers it in one piece, so the
    first token arrives with the last one: TTFT ≈ total, ITL 0. ``buffered`` is set when the
    reply had at least :data:`BUFFERED_MIN_TOKEN_CHUNKS` token chunks, arrived in at most
    :data:`BUFFERED_MAX_READS` socket reads, and the server took clearly longer to produce them
    than they took to arrive: its own span (``created_at`` spread of the chunks, else
    ``eval_ms``) is at least :data:`BUFFERED_MIN_SERVER_SPAN_MS` and the arrival spread under
    :data:`BUFFERED_MAX_ARRIVAL_SHARE` of it. A fast server on loopback that really did write
    everything at once is not flagged, because its span is short. With ``buffered`` the number
    in ``ttft_ms`` is kept but is not a time to first token; tools must flag it, not show it as
    one.

Client overhead on loopback (issue 9, item 12)
    ``network_ms`` is everything outside the server's timer: connection setup on a new
    connection, the client's request serialisation and event-loop scheduling, the HTTP stack on
    both sides, and only then the wire. On loopback that is 2–33 ms against a 1.4 ms round trip,
    so calling it "network" is wrong. What can be measured honestly from the client is one
    round trip of a request the server answers at once (``GET /api/version`` on the same
    connection, taken before the run: the bench's ``server.rtt_ms``). Given that ``rtt_ms``,
    the recorder reports ``client_overhead_ms`` = network_ms − rtt_ms: what the time outside
    the server's timer holds beyond one network round trip. It is mostly the client's own
    share, but it also holds the server's HTTP handling outside its timer, which no client can
    separate; it is labelled "overhead", not "client CPU". We do not subtract a guess of the
    transfer time of the body: on loopback it is negligible, and through a proxy it is part of
    what the user waits for. Without an RTT the field is ``None``.

Reasoning inside the content (Ollama 0.12.0–0.12.4)
    Before thinking became a separate field by default, a thinking model asked without
    ``think`` streamed its reasoning as content between ``<think>`` and ``</think>``. Such
    content is not an answer: :func:`think_tag_chunks` finds the content chunks of a reply
    that *starts* with ``<think>`` up to the closing tag, and they count as thinking
    (``ttft_thinking_ms``, ``thinking_chunks``), so ``ttft_ms`` is still the first answer text.

Outcome
    ``end`` is how the stream ended (:data:`ollamakit.domain.StreamEnd`). When the caller does
    not know, it is inferred: a final chunk → ``"done"``, an error → ``"error"``, otherwise
    ``"cut"``. ``"clean_eof"`` (Ollama's token-repeat guard closes the stream cleanly without a
    done line) is its own outcome: the reply is usable, the server figures are absent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from ollamakit.domain import FinalStats, StreamChunk, StreamEnd
from ollamakit.measure.schema import Identity, Percentiles, RequestResult, empty_result
from ollamakit.measure.stats import percentile_sorted

NS_PER_MS: Final = 1_000_000
#: Shorter server durations than this (1 µs) are clock granularity, not a measurement.
MIN_RATE_DURATION_MS: Final = 0.001
#: Without a cached-token count, prefill rates are reported only from this prompt length on.
PROMPT_TPS_MIN_TOKENS: Final = 512
OPEN_THINK_TAG: Final = "<think>"
CLOSE_THINK_TAG: Final = "</think>"
#: Buffering-proxy rule (module docstring).
BUFFERED_MIN_TOKEN_CHUNKS: Final = 4
BUFFERED_MAX_READS: Final = 2
#: The doctor's threshold too (diagnostics.MIN_SERVER_SPREAD_MS): below ~100 ms of server-side
#: spread a TCP delayed ACK (up to 40 ms, seen on reused loopback connections) or a client
#: that was off the CPU can bunch a healthy stream into one read.
BUFFERED_MIN_SERVER_SPAN_MS: Final = 100.0
BUFFERED_MAX_ARRIVAL_SHARE: Final = 0.25

PromptRateAbsence = str  # "no_stats" | "too_fast" | "cached" | "short_prompt"


def rate_per_s(count: int | None, duration_ms: float | None) -> float | None:
    """``count / duration_s``, as ``ollama run --verbose`` prints it, or ``None`` if degenerate.

    >>> round(rate_per_s(282, 4535.599), 2)  # the chat example in Ollama's docs
    62.17
    >>> rate_per_s(1, 0.0) is None, rate_per_s(1, 0.000999) is None  # below 1 µs: granularity
    (True, True)
    >>> rate_per_s(0, 5.0) is None, rate_per_s(None, 5.0) is None, rate_per_s(3, None) is None
    (True, True, True)
    """
    if count is None or count <= 0 or duration_ms is None:
        return None
    if not math.isfinite(duration_ms) or duration_ms < MIN_RATE_DURATION_MS:
        return None
    return count / (duration_ms / 1000)


def tpot(
    total_ms: float | None, first_token_ms: float | None, eval_count: int | None
) -> float | None:
    """Time per output token after the first: (total − first) / (eval_count − 1).

    >>> tpot(1100.0, 100.0, 101)
    10.0
    >>> tpot(100.0, 100.0, 1) is None  # one token has no "per token after the first"
    True
    >>> tpot(100.0, 100.0, 50) is None  # zero-length decode window: unknown, not 0 ms
    True
    """
    if total_ms is None or first_token_ms is None or eval_count is None or eval_count < 2:
        return None
    window_ms = total_ms - first_token_ms
    if window_ms <= 0:
        return None
    return window_ms / (eval_count - 1)


def prompt_rate(stats: FinalStats | None) -> tuple[float | None, PromptRateAbsence | None]:
    """The prefill rate where it is measurable, else ``None`` and why (module docstring).

    >>> prompt_rate(FinalStats(prompt_eval_count=2000, prompt_eval_ms=400.0))
    (5000.0, None)
    >>> prompt_rate(FinalStats(prompt_eval_count=26, prompt_eval_ms=10.0))
    (None, 'short_prompt')
    >>> prompt_rate(FinalStats(prompt_eval_count=26, prompt_eval_ms=10.0, prompt_cached_count=6))
    (2000.0, None)
    >>> prompt_rate(FinalStats(prompt_eval_count=26, prompt_eval_ms=0.1, prompt_cached_count=26))
    (None, 'cached')
    >>> prompt_rate(None), prompt_rate(FinalStats(prompt_eval_count=900, prompt_eval_ms=0.0))
    ((None, 'no_stats'), (None, 'too_fast'))
    """
    if stats is None or not stats.prompt_eval_count or stats.prompt_eval_ms is None:
        return None, "no_stats"
    count = stats.prompt_eval_count
    if stats.prompt_cached_count is not None:
        count -= stats.prompt_cached_count
        if count <= 0:
            return None, "cached"
    elif count < PROMPT_TPS_MIN_TOKENS:
        return None, "short_prompt"
    rate = rate_per_s(count, stats.prompt_eval_ms)
    return rate, None if rate is not None else "too_fast"


@dataclass(frozen=True, slots=True)
class ItlPercentiles:
    """p50/p95/p99 of the inter-token gaps, ms (``None`` each with fewer than two tokens)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    def as_dict(self, digits: int = 6) -> Percentiles:
        return {
            "p50": _round(self.p50, digits),
            "p95": _round(self.p95, digits),
            "p99": _round(self.p99, digits),
        }


@dataclass(frozen=True, slots=True)
class ReplyMeasurement:
    """Every number any tool shows about one reply. ``None``: not known (never made up)."""

    end: StreamEnd
    error: str | None = None
    ttft_ms: float | None = None
    ttft_thinking_ms: float | None = None
    first_token_ms: float | None = None
    total_ms: float | None = None
    chunks: int = 0
    token_chunks: int = 0
    thinking_chunks: int = 0
    reads: int = 0
    final: FinalStats | None = None
    eval_tps: float | None = None
    tpot_ms: float | None = None
    decode_tps: float | None = None
    prompt_tps: float | None = None
    prompt_tps_absent: PromptRateAbsence | None = None
    itl_ms: ItlPercentiles = field(default_factory=ItlPercentiles)
    network_ms: float | None = None
    rtt_ms: float | None = None
    client_overhead_ms: float | None = None
    buffered: bool = False

    @property
    def ok(self) -> bool:
        """A usable reply: it ended with a final chunk or the repeat guard's clean end."""
        return self.error is None and self.end in ("done", "clean_eof")

    @property
    def eval_count(self) -> int | None:
        return None if self.final is None else self.final.eval_count

    @property
    def eval_ms(self) -> float | None:
        return None if self.final is None else self.final.eval_ms

    @property
    def prompt_eval_count(self) -> int | None:
        return None if self.final is None else self.final.prompt_eval_count

    @property
    def load_ms(self) -> float | None:
        return None if self.final is None else self.final.load_ms

    @property
    def server_total_ms(self) -> float | None:
        return None if self.final is None else self.final.total_ms

    @property
    def done_reason(self) -> str | None:
        return None if self.final is None else self.final.done_reason

    @property
    def shown_ttft_ms(self) -> float | None:
        """The TTFT a tool may present as a TTFT: ``None`` behind a buffering proxy."""
        return None if self.buffered else self.ttft_ms

    def to_result(self, identity: Identity, *, digits: int = 6) -> RequestResult:
        """The benchmark's :class:`RequestResult` row (docs/result-format.md).

        A failed request keeps what was genuinely observed before the failure (TTFT, chunk
        gaps) but has no total and no server figures.
        """
        result = empty_result(identity, error=self.error)
        if self.error is None and not self.ok:
            result["ok"] = False  # cut / timeout without a message: never ok
        result["ttft_ms"] = _round(self.ttft_ms, digits)
        result["ttft_thinking_ms"] = _round(self.ttft_thinking_ms, digits)
        result["thinking_chunks"] = self.thinking_chunks
        result["itl_ms"] = self.itl_ms.as_dict(digits)
        result["end"] = self.end
        result["reads"] = self.reads
        result["buffered"] = self.buffered
        if not self.ok:
            return result
        final = self.final
        result["total_ms"] = _round(self.total_ms, digits)
        result["tpot_ms"] = _round(self.tpot_ms, digits)
        result["e2e_tps"] = _round(self.decode_tps, digits)
        result["prompt_tps_absent"] = self.prompt_tps_absent
        if final is None:
            return result
        result["done_reason"] = final.done_reason
        result["load_ms"] = _round(final.load_ms, digits)
        result["prompt_eval_count"] = final.prompt_eval_count
        result["prompt_eval_ms"] = _round(final.prompt_eval_ms, digits)
        result["eval_count"] = final.eval_count
        result["eval_ms"] = _round(final.eval_ms, digits)
        result["server_total_ms"] = _round(final.total_ms, digits)
        result["prompt_tps"] = _round(self.prompt_tps, digits)
        result["eval_tps"] = _round(self.eval_tps, digits)
        result["network_ms"] = _round(self.network_ms, digits)
        result["client_overhead_ms"] = _round(self.client_overhead_ms, digits)
        return result


class ReplyRecorder:
    """Collects one reply's chunks and measures them with the rules of the module docstring.

    :meth:`add` only keeps the chunk (a list append, tens of nanoseconds): it runs inside the
    window in which streams are timed, where any work delays the stamps of the other streams
    of a batch. Everything is computed once, in :meth:`finish`.

    >>> from ollamakit.domain import StreamChunk as C, FinalStats
    >>> ms = 1_000_000
    >>> r = ReplyRecorder(sent_ns=0)
    >>> for t in (120, 130, 140):
    ...     r.add(C(t * ms, content="x"))
    >>> r.add(C(150 * ms, content="x", final=FinalStats("stop", total_ms=145.0, load_ms=5.0,
    ...     prompt_eval_count=26, prompt_eval_ms=100.0, eval_count=4, eval_ms=40.0)))
    >>> m = r.finish(None)
    >>> m.end, m.ttft_ms, m.total_ms, m.tpot_ms, m.decode_tps, m.eval_tps
    ('done', 120.0, 150.0, 10.0, 100.0, 100.0)
    >>> m.network_ms, m.itl_ms.p50, m.reads, m.prompt_tps, m.prompt_tps_absent
    (5.0, 10.0, 4, None, 'short_prompt')
    """

    __slots__ = ("add", "chunks", "rtt_ms", "sent_ns")

    def __init__(self, sent_ns: int, *, rtt_ms: float | None = None) -> None:
        self.sent_ns = sent_ns
        self.rtt_ms = rtt_ms
        self.chunks: list[StreamChunk] = []
        #: Keep one chunk, in arrival order.
        self.add: Callable[[StreamChunk], None] = self.chunks.append

    def finish(self, end: StreamEnd | None = None, error: str | None = None) -> ReplyMeasurement:
        """The measurement of what was added. ``end``: how the stream ended (inferred if None)."""
        chunks = self.chunks
        sent_ns = self.sent_ns
        first_content_ns: int | None = None
        first_thinking_ns: int | None = None
        thinking_chunks = 0
        reads = 0
        last_read_ns: int | None = None
        arrivals: list[int] = []
        created: list[int] = []
        final: FinalStats | None = None
        tagged = think_tag_chunks(chunks)
        seen: Sequence[StreamChunk] = chunks
        if tagged:  # reasoning sent as content in <think> tags (Ollama < 0.12.5)
            seen = [
                StreamChunk(c.arrival_ns, thinking=c.content, final=c.final) if i in tagged else c
                for i, c in enumerate(chunks)
            ]
        for chunk in seen:
            stamp = chunk.arrival_ns
            if stamp != last_read_ns:
                reads += 1
                last_read_ns = stamp
            if chunk.content:
                if first_content_ns is None:
                    first_content_ns = stamp
                arrivals.append(stamp)
                if chunk.thinking:
                    thinking_chunks += 1
                    if first_thinking_ns is None:
                        first_thinking_ns = stamp
            elif chunk.thinking:
                thinking_chunks += 1
                if first_thinking_ns is None:
                    first_thinking_ns = stamp
                arrivals.append(stamp)
            else:
                if chunk.final is not None:
                    final = chunk.final
                continue
            if chunk.created_ns is not None:
                created.append(chunk.created_ns)
            if chunk.final is not None:
                final = chunk.final
        if end is None:
            end = "done" if final is not None and error is None else "error" if error else "cut"

        def since_sent(stamp: int | None) -> float | None:
            return None if stamp is None else (stamp - sent_ns) / NS_PER_MS

        ttft_ms = since_sent(first_content_ns)
        first_token_ms = since_sent(arrivals[0] if arrivals else None)
        total_ms = since_sent(chunks[-1].arrival_ns if chunks else None)
        gaps = sorted([(b - a) / NS_PER_MS for a, b in itertools.pairwise(arrivals)])
        itl = ItlPercentiles(
            percentile_sorted(gaps, 50), percentile_sorted(gaps, 95), percentile_sorted(gaps, 99)
        )
        eval_count = final.eval_count if final else None
        eval_tps = rate_per_s(eval_count, final.eval_ms) if final else None
        tpot_ms = tpot(total_ms, first_token_ms, eval_count)
        decode_tps = 1000 / tpot_ms if tpot_ms else None
        prompt_tps, absent = prompt_rate(final)
        network_ms = None
        if final is not None and total_ms is not None and final.total_ms:
            network_ms = total_ms - final.total_ms
        overhead_ms = None
        if network_ms is not None and self.rtt_ms is not None:
            overhead_ms = network_ms - self.rtt_ms
        return ReplyMeasurement(
            end=end,
            error=error,
            ttft_ms=ttft_ms,
            ttft_thinking_ms=since_sent(first_thinking_ns),
            first_token_ms=first_token_ms,
            total_ms=total_ms,
            chunks=len(chunks),
            token_chunks=len(arrivals),
            thinking_chunks=thinking_chunks,
            reads=reads,
            final=final,
            eval_tps=eval_tps,
            tpot_ms=tpot_ms,
            decode_tps=decode_tps,
            prompt_tps=prompt_tps,
            prompt_tps_absent=absent,
            itl_ms=itl,
            network_ms=network_ms,
            rtt_ms=self.rtt_ms,
            client_overhead_ms=overhead_ms,
            buffered=_buffered(arrivals, created, reads, final),
        )


def think_tag_chunks(chunks: Sequence[StreamChunk]) -> frozenset[int]:
    """Indices of the content chunks inside a leading ``<think>…</think>`` block.

    Empty unless the reply's content starts (after white space) with the opening tag. The chunk
    holding the closing tag belongs to the block unless answer text follows the tag in it.

    >>> C = lambda text: StreamChunk(0, content=text)
    >>> sorted(think_tag_chunks([C("<think>"), C("hm"), C("</think> "), C("Hi")]))
    [0, 1, 2]
    >>> sorted(think_tag_chunks([C("<thi"), C("nk>hm</think> Hi")])), think_tag_chunks([C("Hi")])
    ([0], frozenset())
    >>> think_tag_chunks([C("<b>bold</b>")])
    frozenset()
    """
    seen = ""
    inside: set[int] = set()
    for index, chunk in enumerate(chunks):
        if not chunk.content:
            continue
        start = len(seen)
        seen += chunk.content
        head = seen.lstrip()
        if not head.startswith(OPEN_THINK_TAG):
            if not OPEN_THINK_TAG.startswith(head):
                return frozenset()  # the answer does not start with a tag
            inside.add(index)  # white space, or the tag still arriving ("<thi")
            continue
        close = seen.find(CLOSE_THINK_TAG, max(0, start - len(CLOSE_THINK_TAG)))
        if close < 0:
            inside.add(index)
            continue
        if seen[close + len(CLOSE_THINK_TAG) :].strip():
            return frozenset(inside)  # this chunk starts the answer
        inside.add(index)
        return frozenset(inside)
    return frozenset(inside)


def _buffered(
    arrivals: list[int], created: list[int], reads: int, final: FinalStats | None
) -> bool:
    """The buffering-proxy rule of the module docstring."""
    if len(arrivals) < BUFFERED_MIN_TOKEN_CHUNKS or reads > BUFFERED_MAX_READS:
        return False
    server_span_ms: float | None = None
    if len(created) >= 2:
        server_span_ms = (created[-1] - created[0]) / NS_PER_MS
    if not server_span_ms and final is not None:
        server_span_ms = final.eval_ms
    if server_span_ms is None or server_span_ms < BUFFERED_MIN_SERVER_SPAN_MS:
        return False
    arrival_span_ms = (arrivals[-1] - arrivals[0]) / NS_PER_MS
    return arrival_span_ms < BUFFERED_MAX_ARRIVAL_SHARE * server_span_ms


def _round(value: float | None, digits: int) -> float | None:
    """Round for the document: 6 decimals keep a nanosecond of a ms value, drop float noise."""
    return None if value is None else round(value, digits)


__all__ = [
    "BUFFERED_MAX_ARRIVAL_SHARE",
    "BUFFERED_MAX_READS",
    "BUFFERED_MIN_SERVER_SPAN_MS",
    "BUFFERED_MIN_TOKEN_CHUNKS",
    "MIN_RATE_DURATION_MS",
    "PROMPT_TPS_MIN_TOKENS",
    "ItlPercentiles",
    "ReplyMeasurement",
    "ReplyRecorder",
    "prompt_rate",
    "rate_per_s",
    "think_tag_chunks",
    "tpot",
]
