"""Writing the NDJSON chunks of a reply: on time for scripted models, flat out for fast ones.

Encoding
--------
Every intermediate chunk of a reply has the same shape, so it is built by concatenating bytes
instead of serialising a dict::

    {"model":<M>,"created_at":"<TS>","response":"<TEXT>","done":false}\\n          generate
    {"model":<M>,"created_at":"<TS>","message":{"role":"assistant","content":"<TEXT>"},...}  chat

with ``"thinking":"<TEXT>"`` after an empty response/content for thinking chunks. The model
name and every token text are Go-escaped once (:func:`ollamakit.sim.gojson.dumps_str`).

All chunks written in one go share one ``created_at``. A long reply repeats a cycle of token
texts (see :class:`ollamakit.sim.tokens.TokenSeq`), so a batch of thousands of chunks is one
cycle's worth of framed lines joined once and then repeated with ``bytes * n``: memcpy speed.
Each line is still its own HTTP chunk, as Go's per-line ``Flush`` produces, so proxies and
clients see the same framing at any rate.

Timing
------
Chunk ``k`` is due at ``t_first + k * interval`` (absolute deadlines, so sleeping late never
accumulates drift). After each sleep every chunk that is due is written in one transport write;
with ``interval = 0`` that is simply a batch of :data:`FAST_BATCH` chunks at a time, with a
yield to the event loop (or a wait for the socket to drain) in between.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

from ollamakit.sim.gojson import dumps, dumps_str, rfc3339nano_utc
from ollamakit.sim.http import Responder
from ollamakit.sim.log import RequestRecord
from ollamakit.sim.tokens import TokenSeq

NDJSON: Final = "application/x-ndjson"
FAST_BATCH: Final = 8192  # chunks per transport write on the fast path (~0.8 MB)


def created_at() -> str:
    return rfc3339nano_utc(time.time_ns())


@dataclass(frozen=True)
class Phase:
    """A run of chunks with one shape: thinking chunks, or answer chunks."""

    seq: TokenSeq
    first: tuple[bytes, ...]  # Go-escaped texts
    cycle: tuple[bytes, ...]
    mid: bytes  # bytes between the timestamp and the text

    @classmethod
    def of(cls, seq: TokenSeq, mid: bytes) -> Phase:
        return cls(
            seq,
            tuple(dumps_str(c) for c in seq.first),
            tuple(dumps_str(c) for c in seq.cycle),
            mid,
        )


class ChunkEncoder:
    """Builds the framed bytes for chunks ``[start, stop)`` of a reply (all phases in a row).

    A line is ``pre + timestamp + mid + text + post``; ``mid`` depends on the phase (thinking
    or answer). :meth:`native` gives Ollama's NDJSON lines; the OpenAI-compatible layer builds
    SSE ``data:`` frames with :meth:`templated` (no timestamp: ``created`` is fixed per reply).
    """

    def __init__(
        self,
        pre: bytes,
        mid_answer: bytes,
        mid_thinking: bytes,
        post: bytes,
        *,
        framed: bool,
        stamped: bool = True,
        content_type: str = NDJSON,
    ) -> None:
        self.pre = pre
        self.mid_answer = mid_answer
        self.mid_thinking = mid_thinking
        self.post = post
        self.framed = framed
        self.stamped = stamped
        self.content_type = content_type
        self.phases: list[Phase] = []

    @classmethod
    def native(
        cls, model: str, *, chat: bool, framed: bool, remote: tuple[str, str] | None = None
    ) -> ChunkEncoder:
        pre = b'{"model":' + dumps(model)
        if remote is not None:
            pre += b',"remote_model":' + dumps(remote[0]) + b',"remote_host":' + dumps(remote[1])
        pre += b',"created_at":"'
        if chat:
            return cls(
                pre,
                b'","message":{"role":"assistant","content":"',
                b'","message":{"role":"assistant","content":"","thinking":"',
                b'"},"done":false}\n',
                framed=framed,
            )
        return cls(
            pre,
            b'","response":"',
            b'","response":"","thinking":"',
            b'","done":false}\n',
            framed=framed,
        )

    def add(self, seq: TokenSeq | None, *, thinking: bool) -> None:
        if seq is not None and seq.count > 0:
            self.phases.append(Phase.of(seq, self.mid_thinking if thinking else self.mid_answer))

    @property
    def total(self) -> int:
        return sum(p.seq.count for p in self.phases)

    def frame(self, line: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(line), line) if self.framed else line

    def encode(self, start: int, stop: int, ts: str) -> bytes:
        ts_b = ts.encode() if self.stamped else b""
        out: list[bytes] = []
        base = 0
        for phase in self.phases:
            n = phase.seq.count
            lo, hi = max(start - base, 0), min(stop - base, n)
            if lo < hi:
                self._encode_phase(phase, lo, hi, self.pre + ts_b + phase.mid, out)
            base += n
        return b"".join(out)

    def _encode_phase(self, phase: Phase, lo: int, hi: int, head: bytes, out: list[bytes]) -> None:
        post, frame = self.post, self.frame
        n_first = len(phase.first)
        for i in range(lo, min(hi, n_first)):
            out.append(frame(head + phase.first[i] + post))
        if hi <= n_first:
            return
        s, e = max(lo, n_first) - n_first, hi - n_first
        cycle = phase.cycle
        size = len(cycle)
        if e - s <= size:
            out.extend(frame(head + cycle[j % size] + post) for j in range(s, e))
            return
        # Many chunks: frame one cycle, then repeat it; only its ends are sliced.
        lines = [frame(head + text + post) for text in cycle]
        whole = b"".join(lines)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        q0, r0 = divmod(s, size)
        q1, r1 = divmod(e, size)
        out.append(whole[offsets[r0] :])
        if q1 - q0 > 1:
            out.append(whole * (q1 - q0 - 1))
        if r1:
            out.append(whole[: offsets[r1]])


@dataclass
class StreamResult:
    sent: int  # chunks written
    first_ns: int | None  # perf_counter_ns of the first write
    last_ns: int | None  # perf_counter_ns of the last write


class ClientGone(Exception):
    """The client closed the connection while chunks were being written."""


async def sleep_until(deadline_ns: int) -> None:
    delay = deadline_ns - time.perf_counter_ns()
    if delay > 0:
        await asyncio.sleep(delay / 1e9)


async def write_chunks(
    resp: Responder,
    encoder: ChunkEncoder,
    *,
    t_first_ns: int,
    interval_ns: int,
    limit: int,
    record: RequestRecord,
) -> StreamResult:
    """Write chunks ``[0, limit)`` on schedule; the first write carries the status line."""
    result = StreamResult(0, None, None)
    await sleep_until(t_first_ns)
    k = 0
    while k < limit:
        if resp.closed:
            raise ClientGone
        if interval_ns > 0:
            await sleep_until(t_first_ns + k * interval_ns)
            due = (time.perf_counter_ns() - t_first_ns) // interval_ns + 1
            stop = min(limit, max(k + 1, due), k + FAST_BATCH)
        else:
            stop = min(limit, k + FAST_BATCH)
        data = encoder.encode(k, stop, created_at())
        # Record first, then write: whoever sees the bytes also sees the record.
        now = time.perf_counter_ns()
        if result.first_ns is None:
            result.first_ns = record.first_chunk_ns = now
        result.last_ns = record.last_chunk_ns = now
        record.chunks += stop - k
        if resp.started:
            resp.write(data)
        else:
            resp.begin_stream(200, encoder.content_type, data, now)
        result.sent = k = stop
        if resp.paused:
            await resp.drain()
        elif interval_ns == 0:
            await asyncio.sleep(0)  # let other connections have a turn
    if resp.closed:
        raise ClientGone
    return result


def write_line(resp: Responder, encoder: ChunkEncoder, line: bytes, record: RequestRecord) -> None:
    """Write one complete line (the final ``done`` or ``error`` line, or an SSE frame)."""
    data = encoder.frame(line)
    now = time.perf_counter_ns()
    if record.first_chunk_ns is None:
        record.first_chunk_ns = now
    record.last_chunk_ns = now
    record.chunks += 1
    if resp.started:
        resp.write(data)
    else:
        resp.begin_stream(200, encoder.content_type, data, now)
