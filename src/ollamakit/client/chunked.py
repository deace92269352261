"""Undo ``Transfer-Encoding: chunked`` fast: the de-framer of the client's stream transport.

Ollama flushes every token as its own HTTP chunk frame; h11 turns each frame into one event
at about 11 µs in Python. :class:`ChunkedDecoder` undoes the framing of a whole socket read
with ``bytes.find`` (about 0.3 µs per frame). It is pure (bytes in, payload out), used by
:mod:`ollamakit.client.transport`, and knows nothing of sockets.
"""

from __future__ import annotations

from itertools import repeat
from typing import Final

#: Longest chunk-size line accepted (a size, maybe an extension); beyond it the body is junk.
MAX_SIZE_LINE: Final = 1024


class ChunkedFramingError(ValueError):
    """The body is not valid chunked transfer encoding."""


class ChunkedDecoder:
    """Undo ``Transfer-Encoding: chunked`` incrementally.

    Ollama sends one NDJSON line per frame, and a line holds no CRLF. So a read is first
    split on CRLF in C: size lines and payloads alternate, and when every size is the length
    of the payload after it, that *is* the framing the exact loop would find (each size line
    ends at the first CRLF, each payload is exactly its size and is followed by a CRLF), so
    the payloads are taken at once. When a size does not match (a payload holding a CRLF, an
    extension) the exact loop decides, and the fast pass is not tried again on that body.

    >>> d = ChunkedDecoder()
    >>> d.feed(b"5\\r\\nhello\\r\\n6\\r\\n wor")
    b'hello wor'
    >>> d.feed(b"ld\\r\\n0\\r\\n\\r\\n"), d.done
    (b'ld', True)
    >>> ChunkedDecoder().feed(b"zz\\r\\n")
    Traceback (most recent call last):
    ...
    ollamakit.client.chunked.ChunkedFramingError: bad chunk size line: b'zz'
    """

    __slots__ = ("_buffer", "_need_crlf", "_remaining", "_split", "_trailer", "done", "extra")

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # payload bytes still to come in the current frame
        self._need_crlf = False  # the CRLF that closes a frame's payload
        self._trailer = False  # after the 0-size frame: optional trailers, then CRLF
        self._split = True  # the fast pass may be tried (no payload so far held a CRLF)
        self.done = False
        self.extra = b""  # bytes after the end of the body (a pipelined response: not reusable)

    def feed(self, data: bytes) -> bytes:
        buf = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        # 1. Finish a frame that an earlier read left open.
        if self._remaining:
            take = min(self._remaining, end)
            out.append(buf[:take])
            pos = take
            self._remaining -= take
            if self._remaining:
                self._buffer = b""
                return out[0]
            self._need_crlf = True
        if self._need_crlf:
            if end - pos < 2:
                self._buffer = buf[pos:]
                return b"".join(out)
            if buf[pos : pos + 2] != b"\r\n":
                raise ChunkedFramingError(f"missing CRLF after chunk: {buf[pos : pos + 8]!r}")
            pos += 2
            self._need_crlf = False
        # 2. The fast pass (class docstring): whole frames split in C, checked, taken at once.
        if self._split and not self._trailer and end - pos > 2:
            parts = buf[pos:].split(b"\r\n") if pos else buf.split(b"\r\n")
            pairs = (len(parts) - 1) & ~1  # (size line, payload) pairs ended by a CRLF
            if pairs:
                payloads = parts[1:pairs:2]
                try:
                    sizes = list(map(int, parts[0:pairs:2], repeat(16)))
                    agree = sizes == list(map(len, payloads))
                except ValueError:  # an extension, or a CRLF inside a payload
                    agree = False
                if agree and 0 not in sizes:
                    out.extend(payloads)
                    pos += sum(map(len, parts[:pairs])) + 2 * pairs
                elif not agree:
                    self._split = False  # this body's frames do not split on CRLF
        # 3. The exact loop: whole frames, local variables only (``startswith`` at an offset
        # checks a frame's CRLF without slicing).
        find = buf.find
        at = buf.startswith
        append = out.append
        while not self._trailer:
            eol = find(b"\r\n", pos)
            if eol < 0:
                if end - pos > MAX_SIZE_LINE:
                    raise ChunkedFramingError("chunk size line too long")
                break
            try:
                size = int(buf[pos:eol], 16)
            except ValueError:
                size = _size_with_extension(buf[pos:eol])
            start = eol + 2
            stop = start + size
            if size > 0 and stop + 2 <= end:
                if not at(b"\r\n", stop):
                    raise ChunkedFramingError(f"missing CRLF after chunk: {buf[stop : stop + 8]!r}")
                append(buf[start:stop])
                pos = stop + 2
                continue
            if size <= 0:
                if size < 0:
                    raise ChunkedFramingError(f"bad chunk size line: {buf[pos:eol][:40]!r}")
                pos = start
                self._trailer = True
                break
            # 4. A frame cut by the end of this read: keep what we have, remember the rest.
            append(buf[start:stop])
            got = min(stop, end) - start
            self._remaining = size - got
            pos = end
            if not self._remaining:
                self._need_crlf = True
                pos = stop
            break
        # 5. After the last (0-size) frame: optional trailer fields, then an empty line.
        if self._trailer and not self.done:
            if buf[pos : pos + 2] == b"\r\n":
                pos += 2
                self.done = True
            else:
                eol = find(b"\r\n\r\n", pos)
                if eol >= 0:
                    pos = eol + 4
                    self.done = True
        if self.done:
            self.extra = buf[pos:]
            self._buffer = b""
        else:
            self._buffer = buf[pos:] if not self._remaining else b""
        return b"".join(out) if len(out) != 1 else out[0]


def _size_with_extension(line: bytes) -> int:
    """Chunk size of a size line that carries an extension (``1a;name=value``)."""
    try:
        return int(line.split(b";", 1)[0], 16)
    except ValueError:
        raise ChunkedFramingError(f"bad chunk size line: {line[:40]!r}") from None
