"""Ollama's NDJSON stream decoder: socket reads in, validated :class:`StreamChunk` values out.

Design
------
The decoder works on raw reads: each read is stamped once with ``time.perf_counter_ns()`` by
the caller (all chunks in one read arrived together) and split on ``\\n``.

* **Speed** (``bench/stream_intake.py``): a line of the common shape (``message`` or
  ``response`` text, ``done: false``) is decoded *and type-checked* in one msgspec call into a
  small struct, and the :class:`StreamChunk` is built by plain slot stores on a twin class
  (:class:`_Chunk`). The ``created_at`` stamps of one read are parsed together after the
  loop (:meth:`_CreatedAtParser.many`: a repeated stamp once, stamps of one layout with
  C-level maps), which was the largest cost per line. In all about a third of the per-line
  cost of ``orjson.loads`` plus the checks and the parse in Python. Every other line (the
  final one, an error, anything msgspec refuses, blank lines) goes through the exact path,
  :meth:`NDJSONDecoder._line`: orjson and explicit checks, which is also the reference the
  fast loop is tested against on hostile lines. msgspec only *accepts* what the exact path
  accepts with the same values (one value per call, so ``{..}{..}`` is refused; ``null`` for
  ``message`` is refused by both), so the fast loop never changes an outcome.
* **Validated at the boundary** (issue 10): a line that is not a JSON object, a ``message``
  that is not an object, text that is not a string or a ``done`` that is not a boolean raise a
  :class:`~ollamakit.errors.ProtocolError`; a figure that cannot be right (negative, absurd,
  wrong type) becomes ``None``. Nothing above the client sees a raw dict.
* **Linear time, bounded memory**: an unfinished line is kept as a list of pieces and joined
  once, when its newline arrives (not re-concatenated on every read, which is quadratic); a
  line longer than :data:`MAX_LINE_BYTES` (8 MiB, like the ``bufio`` limit of Ollama's own Go
  client) is refused.
* **How the body ended** is the caller's knowledge: :meth:`NDJSONDecoder.finish` is told
  whether the HTTP body ended cleanly. A clean end without a ``done`` line is Ollama's
  token-repeat guard (``end="clean_eof"``), not a cut stream.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from itertools import repeat
from operator import add, eq, itemgetter, mul
from typing import Any, Final, Literal

import msgspec
import orjson
from msgspec import UNSET, UnsetType

from ollamakit.client.judge import first_line
from ollamakit.domain import FinalStats, StreamChunk
from ollamakit.errors import BadChunk, NotOllama, StreamCut, StreamError
from ollamakit.i18n import t

#: The longest NDJSON line accepted (as Ollama's Go client: a ``bufio`` buffer of 8 MiB).
MAX_LINE_BYTES: Final = 8 * 1024 * 1024

#: A duration above this (ns) is not a real figure: ~31 years. Such a value becomes None.
_MAX_DURATION_NS: Final = 10**18
#: A token count above this is not a real figure (no context holds a billion tokens).
_MAX_COUNT: Final = 10**9


def _duration_ms(value: object) -> float | None:
    """A Go duration (int ns) in ms; None when absent, not an integer, negative or absurd.

    >>> _duration_ms(4535599000), _duration_ms(-1), _duration_ms(1.5), _duration_ms(10**19)
    (4535.599, None, None, None)
    """
    if value.__class__ is not int or not 0 <= value <= _MAX_DURATION_NS:
        return None
    return value / 1e6


def _count(value: object) -> int | None:
    """A token count; None when absent, not an integer, negative or absurd.

    >>> _count(26), _count(True), _count(-3), _count(10**12), _count("7")
    (26, None, None, None, None)
    """
    if value.__class__ is not int or not 0 <= value <= _MAX_COUNT:
        return None
    return value


def final_stats(obj: Mapping[str, Any]) -> FinalStats:
    """The server's figures of a final (``done: true``) wire object, validated, ns → ms.

    >>> final_stats({"done_reason": "stop", "eval_count": 4, "eval_duration": 40_000_000})
    FinalStats(done_reason='stop', total_ms=None, load_ms=None, prompt_eval_count=None, \
prompt_eval_ms=None, prompt_cached_count=None, eval_count=4, eval_ms=40.0)
    """
    reason = obj.get("done_reason")
    return FinalStats(
        done_reason=reason if isinstance(reason, str) and reason else None,
        total_ms=_duration_ms(obj.get("total_duration")),
        load_ms=_duration_ms(obj.get("load_duration")),
        prompt_eval_count=_count(obj.get("prompt_eval_count")),
        prompt_eval_ms=_duration_ms(obj.get("prompt_eval_duration")),
        eval_count=_count(obj.get("eval_count")),
        eval_ms=_duration_ms(obj.get("eval_duration")),
    )


_CREATED_AT: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


class _CreatedAtParser:
    """``created_at`` (RFC 3339, up to ns) → ns since the epoch, cheap on a stream.

    Consecutive chunks share the whole-second part, so the last one is cached and only the
    fraction is parsed per chunk. ``fast`` describes the last stamp's layout for the decoder's
    inlined check: (length, text up to and with the ".", zone, end of the digits, ns of the
    whole second, scale of the fraction); only the fraction's digits may differ.

    >>> p = _CreatedAtParser()
    >>> p("2025-10-26T17:21:21.196249Z") - p("2025-10-26T17:21:21Z")
    196249000
    >>> p("2023-08-04T08:52:19.385406455-07:00") == p("2023-08-04T15:52:19.385406455Z")
    True
    >>> p("yesterday") is None, p(None) is None, p("2023-08-04T15:52:19.38540645²Z") is None
    (True, True, True)
    """

    __slots__ = ("_key", "_seconds", "fast")

    def __init__(self) -> None:
        self._key = ""
        self._seconds = 0
        self.fast: tuple[int, str, str, int, int, int] = (-1, "", "Z", -1, 0, 0)

    def __call__(self, text: object) -> int | None:
        if text.__class__ is not str:
            return None
        assert isinstance(text, str)
        length, prefix, zone, cut, base, scale = self.fast
        if len(text) == length and text.startswith(prefix) and text.endswith(zone):
            digits = text[20:cut]
            if digits.isdecimal():
                return base + int(digits) * scale
        # Same whole second and zone as the previous chunk, another fraction length.
        zone_len = 1 if text.endswith("Z") else 6
        fraction = text[19:-zone_len]
        if text[:19] + text[-zone_len:] == self._key and (
            not fraction
            or (fraction[0] == "." and 1 < len(fraction) <= 10 and fraction[1:].isdecimal())
        ):
            return self._remember(text, zone_len, fraction)
        match = _CREATED_AT.match(text)
        if match is None:
            return None
        whole, fraction, zone = match.groups()
        try:
            moment = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
        except ValueError:
            return None
        self._key, self._seconds = whole + zone, int(moment.timestamp())
        return self._remember(text, len(zone), "." + fraction if fraction else "")

    def many(self, stamps: list[str]) -> list[int | None]:
        """The stamps of one read (``""``: none), parsed together. A stamp that repeats (a
        server whose clock is coarse, or that stamps a burst once, as the simulator does) is
        parsed once; stamps that all share the layout of the last one have only their
        fractions parsed, with C-level maps; anything else one by one.

        >>> p = _CreatedAtParser()
        >>> p.many(["2025-10-26T17:21:21.19Z", "2025-10-26T17:21:21.25Z", ""])
        [1761499281190000000, 1761499281250000000, None]
        >>> p.many(["2025-10-26T17:21:21.19Z", "2025-10-26T17:21:21.5Z", "x"])
        [1761499281190000000, 1761499281500000000, None]
        >>> p.many(["2025-10-26T17:21:21.19Z"] * 4) == [1761499281190000000] * 4
        True
        """
        distinct = set(stamps)
        if len(distinct) * 4 <= len(stamps):
            parsed = {text: self(text) if text else None for text in distinct}
            return list(map(parsed.__getitem__, stamps))
        if stamps[-1]:
            self(stamps[-1])  # its layout is then the one to compare with
        length, prefix, zone, cut, base, scale = self.fast
        if (
            all(map(eq, map(len, stamps), repeat(length)))
            and all(map(str.startswith, stamps, repeat(prefix)))
            and all(map(str.endswith, stamps, repeat(zone)))
        ):
            digits = list(map(itemgetter(slice(20, cut)), stamps))
            if all(map(str.isdecimal, digits)):
                return list(map(add, repeat(base), map(mul, map(int, digits), repeat(scale))))
        return [self(text) if text else None for text in stamps]

    def _remember(self, text: str, zone_len: int, fraction: str) -> int:
        base = self._seconds * 1_000_000_000
        if fraction:
            scale: int = 10 ** (10 - len(fraction))
            self.fast = (len(text), text[:20], text[-zone_len:], -zone_len, base, scale)
            return base + int(fraction[1:]) * scale
        return base


class _Chunk:
    """How the fast loop builds a :class:`StreamChunk`: plain slot stores on this twin of its
    layout, then ``__class__`` set to :class:`StreamChunk` (Python allows that between classes
    of the same slots). The frozen dataclass ``__init__`` makes five ``object.__setattr__``
    calls; this is about 2.5 times as fast (and 1.5 times as fast as calling the slot
    descriptors' ``__set__``), and the value is the same frozen object
    (``_is_twin`` is checked at import, tests/client/test_ndjson.py compares values).
    """

    __slots__ = ("arrival_ns", "content", "created_ns", "final", "thinking")
    arrival_ns: int
    content: str
    thinking: str
    final: FinalStats | None
    created_ns: int | None


def _is_twin() -> bool:
    """Whether :class:`_Chunk` has exactly :class:`StreamChunk`'s slots (Python lays slots
    out in sorted order, and refuses a ``__class__`` change between different layouts).

    >>> _is_twin()
    True
    """
    return sorted(_Chunk.__slots__) == sorted(StreamChunk.__slots__) and StreamChunk.__bases__ == (
        object,
    )


assert _is_twin(), "StreamChunk changed its fields: update _Chunk"


class _WireMessage(msgspec.Struct, gc=False):
    content: str = ""
    thinking: str = ""


class _WireChunk(msgspec.Struct, gc=False):
    """The common shape of a stream line, as msgspec checks it in C: text fields that are
    strings, ``done: false``, no ``error``. A line it refuses is not necessarily wrong (a null
    text, the final line, an error): the exact path (:meth:`NDJSONDecoder._line`) decides."""

    message: _WireMessage | UnsetType = UNSET
    response: str = ""
    thinking: str = ""
    done: Literal[False] = False
    created_at: str = ""
    error: UnsetType = UNSET


_decode_common: Final = msgspec.json.Decoder(_WireChunk).decode


def _refuse(line: bytes) -> _WireChunk:
    """The fast decoder of ``NDJSONDecoder(fast=False)``: takes nothing."""
    raise ValueError("exact path only")


class NDJSONDecoder:
    """Incremental NDJSON decoder for Ollama streams: wire lines in, :class:`StreamChunk` out.

    Every field is checked at this boundary: a line that is not a JSON object, a ``message``
    that is not an object, text that is not a string or a ``done`` that is not a boolean raise
    :class:`BadChunk`; a figure that cannot be right (negative, absurd, wrong type) becomes
    ``None``. Nothing above the client sees a raw dict.

    >>> d = NDJSONDecoder("http://h/api/generate")
    >>> [c.content for c in d.feed(b'{"response":"Hi","done":false}\\n{"resp', 1)]
    ['Hi']
    >>> [(c.content, c.done) for c in d.feed(b'onse":"!","done":true}\\n', 2)]
    [('!', True)]
    >>> d.finish()
    []
    >>> NDJSONDecoder("u").feed(b'{"error":"boom"}\\n', 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.StreamError: The server failed in the middle of the reply: boom
    >>> NDJSONDecoder("u").feed(b'{"message":"hi","done":false}\\n', 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.BadChunk: Unexpected answer from u: "message" is a str, not an object
    """

    __slots__ = (
        "_created",
        "_decode",
        "_done",
        "_pending",
        "_pieces",
        "_url",
        "count",
        "max_line",
    )

    def __init__(self, url: str, *, max_line: int = MAX_LINE_BYTES, fast: bool = True) -> None:
        """``fast=False`` sends every line through the exact path (tests compare the two)."""
        self._url = url
        self._decode = _decode_common if fast else _refuse
        self._pieces: list[bytes] = []  # an unfinished line, in the pieces it came in
        self._pending = 0  # their total length
        self._done = False
        self._created = _CreatedAtParser()
        self.count = 0
        self.max_line = max_line

    def feed(self, data: bytes, arrival_ns: int) -> list[StreamChunk]:
        if self._pieces:
            if b"\n" not in data:
                self._hold(data)
                return []
            self._pieces.append(data)
            data = b"".join(self._pieces)
            self._pieces = []
            self._pending = 0
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self._hold(rest)
        out: list[StreamChunk] = []
        append = out.append
        decode = self._decode
        new, twin = object.__new__, _Chunk
        pieces: list[_Chunk] = []  # the fast loop's chunks, finished after it
        keep = pieces.append
        stamps: list[str] = []
        stamp = stamps.append
        # The hot loop (module docstring, "Speed"): one msgspec call per line; a line it
        # refuses goes through the exact path, :meth:`_line`.
        for line in lines:
            try:
                wire = decode(line)
            except Exception:  # not the common shape (or not JSON, too deep...)
                chunk = self._line(line, arrival_ns)
                if chunk is not None:
                    append(chunk)
                continue
            message = wire.message
            piece = new(twin)
            piece.arrival_ns = arrival_ns
            if isinstance(message, _WireMessage):
                piece.content, piece.thinking = message.content, message.thinking
            else:
                piece.content, piece.thinking = wire.response, wire.thinking
            piece.final = None
            stamp(wire.created_at)
            keep(piece)
            append(piece)  # type: ignore[arg-type]  # a StreamChunk once finished below
        if pieces:
            cls = StreamChunk
            for piece, created_ns in zip(pieces, self._created.many(stamps), strict=True):
                piece.created_ns = created_ns
                piece.__class__ = cls  # type: ignore[assignment]  # now a StreamChunk
        self.count += len(out)
        return out

    def _line(self, line: bytes, arrival_ns: int) -> StreamChunk | None:
        """One line, decoded and checked field by field (every case the fast loop leaves):
        the reference the fast loop must agree with (tests/client/test_ndjson.py)."""
        if not line or line == b"\r":
            return None
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise self._not_json(line) from None
        if obj.__class__ is not dict:
            raise self._not_json(line)
        get = obj.get
        if "error" in obj:
            raise StreamError(str(obj["error"]), url=self._url)
        message = get("message")
        if message.__class__ is dict:
            content = message.get("content", "")
            thinking = message.get("thinking", "")
        elif message is None and "message" not in obj:
            content = get("response", "")
            thinking = get("thinking", "")
        else:
            raise self._bad(f'"message" is a {type(message).__name__}, not an object')
        if content.__class__ is not str:
            if content is not None:
                raise self._bad(f'"content" is a {type(content).__name__}, not a string')
            content = ""
        if thinking.__class__ is not str:
            if thinking is not None:
                raise self._bad(f'"thinking" is a {type(thinking).__name__}, not a string')
            thinking = ""
        done = get("done", False)
        if done is True:
            self._done = True
            final: FinalStats | None = final_stats(obj)
        elif done is False:
            final = None
        else:
            raise self._bad(f'"done" is {done!r}, not true or false')
        return StreamChunk(arrival_ns, content, thinking, final, self._created(get("created_at")))

    @property
    def complete(self) -> bool:
        """Whether the ``"done": true`` line has arrived."""
        return self._done

    def finish(self, *, clean: bool = False, arrival_ns: int | None = None) -> list[StreamChunk]:
        """Call at end of body: decodes a last unterminated line (stamped ``arrival_ns``,
        default now).

        Without a ``done`` line this raises :class:`StreamCut`, unless ``clean`` (the HTTP
        body ended properly: Ollama stopped the reply itself), where it simply returns.
        """
        rest = b"".join(self._pieces).strip()
        self._pieces = []
        self._pending = 0
        if arrival_ns is None:
            arrival_ns = time.perf_counter_ns()
        out = self.feed(rest + b"\n", arrival_ns) if rest else []
        if not self._done and not clean:
            raise StreamCut(t("client.no_done_line", count=self.count), url=self._url)
        return out

    def end_of_body(self, arrival_ns: int) -> list[StreamChunk]:
        """The body ended cleanly (:class:`~ollamakit.client.stream.StreamDecoder`): a
        missing ``done`` line is Ollama's token-repeat guard, not an error."""
        return self.finish(clean=True, arrival_ns=arrival_ns)

    def _hold(self, piece: bytes) -> None:
        self._pending += len(piece)
        if self._pending > self.max_line:
            self._pieces = []
            self._pending = 0
            raise BadChunk(t("client.line_too_long", limit=self.max_line), url=self._url)
        self._pieces.append(piece)

    def _bad(self, what: str) -> BadChunk:
        return BadChunk(what, url=self._url)

    def _not_json(self, line: bytes) -> NotOllama:
        return NotOllama(
            status=200,
            url=self._url,
            content_type="application/x-ndjson",
            first_line=first_line(line),
        )
