"""JSON and time exactly as Ollama's Go code writes and reads them.

Encoding
--------
Ollama answers with Go ``encoding/json``. Two things differ from what Python libraries emit:
Go escapes ``<``, ``>``, ``&`` (and U+2028/U+2029) inside strings as ``\\u003c`` and so on, and
keys come in struct-field order. :func:`dumps` runs orjson (fast, keeps dict insertion order)
and then rewrites those bytes; the characters can only occur inside strings, so a plain byte
replacement is safe.

Decoding
--------
Ollama decodes request bodies with gin's ``ShouldBindJSON`` (a ``json.Decoder``), and its error
text reaches the client verbatim: ``invalid character 'b' looking for beginning of object key
string``, ``unexpected EOF``, ``json: cannot unmarshal string into Go struct field
GenerateRequest.stream of type bool``. :func:`decode_body` reproduces those messages:

1. orjson parses the body; almost every real request takes only this path.
2. If orjson refuses, :func:`scan_value` replays Go's scanner state machine byte by byte to find
   the first syntax error and its message (or the end of the first value, since a Decoder ignores
   whatever follows it).
3. :func:`check_fields` walks the parsed object against a small schema of the Go request structs
   and reports the first type error in document order, as Go's decoder does.

Time
----
``created_at`` is RFC3339Nano in UTC with trailing zeros trimmed; ``modified_at``/``expires_at``
are in local time with a numeric offset (``Z`` when the offset is zero). Durations are integer
nanoseconds and are formatted by the callers.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

_GO_ESCAPES: Final = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def go_escape(data: bytes) -> bytes:
    """Apply Go's HTML-safe escaping to already-encoded JSON.

    >>> go_escape(b'{"a":"<b>&"}')
    b'{"a":"\\\\u003cb\\\\u003e\\\\u0026"}'
    """
    for raw, escaped in _GO_ESCAPES:
        if raw in data:  # a memchr-speed scan; a regex is ten times slower on large replies
            data = data.replace(raw, escaped)
    return data


def dumps(obj: Any) -> bytes:
    """Encode like Go ``json.Marshal``: insertion-ordered keys, ``<>&`` escaped, no newline."""
    return go_escape(orjson.dumps(obj))


def dumps_str(text: str) -> bytes:
    """A JSON string literal's inside (no quotes), Go-escaped: for hand-built chunk templates.

    >>> dumps_str('say "hi" <b>')
    b'say \\\\"hi\\\\" \\\\u003cb\\\\u003e'
    """
    return dumps(text)[1:-1]


# --- time -------------------------------------------------------------------------------------

_utc_cache: tuple[int, str] = (-1, "")


def rfc3339nano_utc(ns: int) -> str:
    """Go's ``time.Time`` JSON form in UTC: RFC3339 with up to 9 fraction digits, zeros trimmed.

    >>> rfc3339nano_utc(1_691_177_365_499_127_000)
    '2023-08-04T19:29:25.499127Z'
    >>> rfc3339nano_utc(1_691_177_365_000_000_000)
    '2023-08-04T19:29:25Z'
    """
    global _utc_cache
    sec, frac = divmod(ns, 1_000_000_000)
    cached_sec, base = _utc_cache
    if cached_sec != sec:
        # One strftime per second: a stream writes many chunks per second.
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _utc_cache = (sec, base)
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def rfc3339nano_local(ns: int) -> str:
    """Go's ``time.Time`` JSON form in the local time zone, e.g. ``...T14:38:31.83753-07:00``."""
    sec, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(sec)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    if frac:
        text = f"{text}.{frac:09d}".rstrip("0")
    offset = tm.tm_gmtoff or 0
    if offset == 0:
        return text + "Z"  # Go's "Z07:00" layout prints Z for a zero offset
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


_UNITS: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")
MAX_DURATION_NS: Final = 2**63 - 1


def parse_go_duration(text: str) -> int:
    """Go ``time.ParseDuration``: ``"5m"``, ``"1h30m"``, ``"-1s"``, ``"0"`` -> nanoseconds.

    >>> parse_go_duration("1h30m")
    5400000000000
    >>> parse_go_duration("0")
    0
    >>> parse_go_duration("300")
    Traceback (most recent call last):
    ...
    ValueError: time: missing unit in duration "300"
    """
    quoted = '"' + text + '"'
    rest = text
    sign = 1
    if rest[:1] in ("+", "-"):
        sign = -1 if rest[0] == "-" else 1
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if match is None or match.group(1) in ("", "."):
            if re.match(r"\d*\.?\d*$", rest[pos:]):
                raise ValueError(f"time: missing unit in duration {quoted}")
            unit = re.match(r"\d*\.?\d*([^\d.]*)", rest[pos:])
            if unit and unit.group(1) and match is None:
                raise ValueError(f'time: unknown unit "{unit.group(1)}" in duration {quoted}')
            raise ValueError(f"time: invalid duration {quoted}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if total > MAX_DURATION_NS:
        raise ValueError(f"time: invalid duration {quoted}")
    return sign * int(total)


# --- decoding: Go's scanner ------------------------------------------------------------------


class GoDecodeError(ValueError):
    """A request body Go's decoder would reject; ``str()`` is Go's error text."""


class EmptyBody(GoDecodeError):
    """The body is empty or only whitespace (Go: ``io.EOF``, Ollama: ``missing request body``)."""


def _quote_char(c: int) -> str:
    """Go ``quoteChar``: how a byte is shown in a syntax error message.

    >>> _quote_char(ord("b")), _quote_char(ord("'")), _quote_char(10)
    ("'b'", "'\\\\''", "'\\\\n'")
    """
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    named = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
    if c in named:
        return f"'{named[c]}'"
    if c < 0x20 or c == 0x7F:
        return f"'\\x{c:02x}'"
    char = chr(c)  # Go converts the byte to a rune U+0000..U+00FF
    if c >= 0x80 and not char.isprintable():
        return f"'\\u{c:04x}'"
    if c == 0x5C:
        return "'\\\\'"
    return f"'{char}'"


_WS: Final = frozenset(b" \t\r\n")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_DIGITS: Final = frozenset(b"0123456789")


def scan_value(data: bytes) -> int:
    """Replay Go's JSON scanner over the first value of ``data``; return the index after it.

    Raises :class:`EmptyBody` for an empty body and :class:`GoDecodeError` with Go's message
    otherwise (``unexpected EOF`` when the body ends inside the value).

    >>> scan_value(b'{"a": 1} trailing')
    8
    >>> scan_value(b'[1,]')
    Traceback (most recent call last):
    ...
    ollamakit.sim.gojson.GoDecodeError: invalid character ']' looking for beginning of value
    >>> scan_value(b'{"model":')
    Traceback (most recent call last):
    ...
    ollamakit.sim.gojson.GoDecodeError: unexpected EOF
    """
    n = len(data)
    i = 0
    while i < n and data[i] in _WS:
        i += 1
    if i == n:
        raise EmptyBody("EOF")

    def fail(pos: int, context: str) -> GoDecodeError:
        if pos >= n:
            return GoDecodeError("unexpected EOF")
        return GoDecodeError(f"invalid character {_quote_char(data[pos])} {context}")

    def skip_ws(pos: int) -> int:
        while pos < n and data[pos] in _WS:
            pos += 1
        return pos

    def literal(pos: int, word: bytes) -> int:
        for k in range(1, len(word)):
            if pos + k >= n:
                raise GoDecodeError("unexpected EOF")
            if data[pos + k] != word[k]:
                expected = chr(word[k])
                raise fail(pos + k, f"in literal {word.decode()} (expecting '{expected}')")
        return pos + len(word)

    def string(pos: int) -> int:
        pos += 1  # opening quote
        while True:
            if pos >= n:
                raise GoDecodeError("unexpected EOF")
            c = data[pos]
            if c == 0x22:
                return pos + 1
            if c == 0x5C:
                pos += 1
                if pos >= n:
                    raise GoDecodeError("unexpected EOF")
                e = data[pos]
                if e == ord("u"):
                    for k in range(1, 5):
                        if pos + k >= n:
                            raise GoDecodeError("unexpected EOF")
                        if data[pos + k] not in _HEX:
                            raise fail(pos + k, "in \\u hexadecimal character escape")
                    pos += 5
                    continue
                if e not in b'bfnrt\\/"':
                    raise fail(pos, "in string escape code")
                pos += 1
                continue
            if c < 0x20:
                raise fail(pos, "in string literal")
            pos += 1

    def number(pos: int, top: bool) -> int:
        # Go needs the byte after a number to know it ended; at top level EOF ends it too.
        if data[pos] == ord("-"):
            pos += 1
            if pos >= n:
                raise GoDecodeError("unexpected EOF")
            if data[pos] not in _DIGITS:
                raise fail(pos, "in numeric literal")
        if data[pos] == ord("0"):
            pos += 1
        else:
            while pos < n and data[pos] in _DIGITS:
                pos += 1
        if pos < n and data[pos] == ord("."):
            pos += 1
            if pos >= n:
                raise GoDecodeError("unexpected EOF")
            if data[pos] not in _DIGITS:
                raise fail(pos, "after decimal point in numeric literal")
            while pos < n and data[pos] in _DIGITS:
                pos += 1
        if pos < n and data[pos] in b"eE":
            pos += 1
            if pos < n and data[pos] in b"+-":
                pos += 1
            if pos >= n:
                raise GoDecodeError("unexpected EOF")
            if data[pos] not in _DIGITS:
                raise fail(pos, "in exponent of numeric literal")
            while pos < n and data[pos] in _DIGITS:
                pos += 1
        if pos >= n and not top:
            raise GoDecodeError("unexpected EOF")
        return pos

    def value(pos: int, top: bool) -> int:
        pos = skip_ws(pos)
        if pos >= n:
            raise GoDecodeError("unexpected EOF")
        c = data[pos]
        if c == ord("{"):
            pos = skip_ws(pos + 1)
            if pos < n and data[pos] == ord("}"):
                return pos + 1
            while True:
                pos = skip_ws(pos)
                if pos >= n or data[pos] != 0x22:
                    raise fail(pos, "looking for beginning of object key string")
                pos = skip_ws(string(pos))
                if pos >= n or data[pos] != ord(":"):
                    raise fail(pos, "after object key")
                pos = skip_ws(value(pos + 1, False))
                if pos < n and data[pos] == ord(","):
                    pos += 1
                    continue
                if pos < n and data[pos] == ord("}"):
                    return pos + 1
                raise fail(pos, "after object key:value pair")
        if c == ord("["):
            pos = skip_ws(pos + 1)
            if pos < n and data[pos] == ord("]"):
                return pos + 1
            while True:
                pos = skip_ws(value(pos, False))
                if pos < n and data[pos] == ord(","):
                    pos += 1
                    continue
                if pos < n and data[pos] == ord("]"):
                    return pos + 1
                raise fail(pos, "after array element")
        if c == 0x22:
            return string(pos)
        if c == ord("-") or c in _DIGITS:
            return number(pos, top)
        for word in (b"true", b"false", b"null"):
            if c == word[0]:
                return literal(pos, word)
        raise fail(pos, "looking for beginning of value")

    return value(i, True)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # Go accepts what orjson refuses inside valid syntax: invalid UTF-8 (replaced by
        # U+FFFD), lone surrogate escapes, integers beyond 64 bits.
        return json.loads(data.decode("utf-8", "replace"))


def decode_body(data: bytes) -> Any:
    """Parse a request body as Ollama's Go decoder would, raising Go's error text."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    end = scan_value(data)  # raises with Go's message, or finds where the first value ends
    return _loads(data[:end])


# --- decoding: struct fields and their Go types -----------------------------------------------


def go_value_kind(value: Any) -> str:
    """Go's name for a JSON value in ``UnmarshalTypeError`` (``string``, ``number``, ...)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_type_of(value: Any) -> str:
    """``reflect.TypeOf`` of a value decoded into ``any``, as Ollama's messages print it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "<nil>"


@dataclass(frozen=True)
class Field:
    """One field of a Go request struct: its JSON key and a checker for its Go type."""

    key: str
    go_type: str  # "string", "bool", "int", "[]int", "object", "any", or a custom name
    elem: Schema | None = None  # for "[]struct" and "struct"


@dataclass(frozen=True)
class Schema:
    struct: str  # Go struct name, e.g. "GenerateRequest"
    go_name: str  # qualified type name, e.g. "api.GenerateRequest"
    fields: tuple[Field, ...]

    def field(self, key: str) -> Field | None:
        # Go matches an exact key first, then a case-insensitive one.
        for f in self.fields:
            if f.key == key:
                return f
        lower = key.lower()
        for f in self.fields:
            if f.key.lower() == lower:
                return f
        return None


Custom = Callable[[Any], None]  # raises GoDecodeError with the message Ollama returns

_THINK_LEVELS: Final = ("high", "medium", "low", "max")


def check_think(value: Any, levels: tuple[str, ...] = _THINK_LEVELS) -> None:
    """Ollama's ``ThinkValue.UnmarshalJSON``; ``levels`` are the version's accepted strings."""
    if value is None or isinstance(value, bool):
        return
    listed = ", ".join(f'"{level}"' for level in levels)
    if isinstance(value, str):
        if value in levels:
            return
        raise GoDecodeError(
            f"invalid think value: {json.dumps(value, ensure_ascii=False)} "
            f"(must be {listed}, true, or false)"
        )
    raise GoDecodeError(f"think must be a boolean or string ({listed}, true, or false)")


def keep_alive_ns(value: Any) -> int | None:
    """Ollama's ``Duration.UnmarshalJSON`` for ``keep_alive``; negative means forever.

    >>> keep_alive_ns(0), keep_alive_ns("5m"), keep_alive_ns(1.5), keep_alive_ns(-1) == 2**63 - 1
    (0, 300000000000, 1500000000, True)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise GoDecodeError("Unsupported type: 'bool'")
    if isinstance(value, (int, float)):
        if value < 0:
            return MAX_DURATION_NS
        return int(min(float(value) * 1e9, MAX_DURATION_NS))
    if isinstance(value, str):
        try:
            ns = parse_go_duration(value)
        except ValueError as exc:
            raise GoDecodeError(str(exc)) from None
        return MAX_DURATION_NS if ns < 0 else ns
    raise GoDecodeError(f"Unsupported type: '{_go_type_of(value)}'")


_B64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def check_base64(value: str) -> None:
    """Go ``base64.StdEncoding.Decode`` errors for ``images`` entries (``\\r``/``\\n`` skipped)."""
    data = value.encode().replace(b"\r", b"").replace(b"\n", b"")
    match = _B64.match(data)
    end = match.end() if match else 0
    if end < len(data):
        raise GoDecodeError(f"illegal base64 data at input byte {end}")
    if len(data) % 4:
        raise GoDecodeError(f"illegal base64 data at input byte {len(data) // 4 * 4}")


def _check_keep_alive(value: Any) -> None:
    keep_alive_ns(value)


# ``think`` is checked by the app after the struct fields, with the version's levels.
_CUSTOM: Final[Mapping[str, Custom]] = {"keep_alive": _check_keep_alive}


def _type_error(value: Any, schema: Schema, path: str, go_type: str) -> GoDecodeError:
    kind = go_value_kind(value)
    if kind == "number" and go_type == "int" and isinstance(value, float):
        kind = f"number {value!r}" if not math.isinf(value) else kind
    where = f"{schema.struct}.{path}"
    return GoDecodeError(
        f"json: cannot unmarshal {kind} into Go struct field {where} of type {go_type}"
    )


def check_fields(obj: Any, schema: Schema) -> None:
    """Raise the first type error Go would report when decoding ``obj`` into ``schema``."""
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise GoDecodeError(
            f"json: cannot unmarshal {go_value_kind(obj)} into Go value of type {schema.go_name}"
        )
    _check_object(obj, schema, "")


def _check_object(obj: dict[str, Any], schema: Schema, prefix: str) -> None:
    for key, value in obj.items():
        f = schema.field(key)
        if f is None or value is None:
            continue  # unknown keys are ignored; null leaves the zero value
        path = prefix + f.key
        if f.key in _CUSTOM and f.go_type == "custom":
            _CUSTOM[f.key](value)
            continue
        _check_value(value, f, schema, path)


def _check_value(value: Any, f: Field, schema: Schema, path: str) -> None:
    t = f.go_type
    ok: bool
    if t == "string":
        ok = isinstance(value, str)
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and not isinstance(value, bool):
            ok = value.is_integer()
    elif t == "object":
        ok = isinstance(value, dict)
        t = "map[string]interface {}"
    elif t == "any":
        ok = True
    elif t.startswith("[]"):
        if not isinstance(value, list):
            raise _type_error(value, schema, path, t)
        elem_type = t[2:]
        for item in value:
            if item is None:
                continue
            if f.elem is not None:
                if not isinstance(item, dict):
                    raise _type_error(item, schema, path, elem_type)
                _check_object(item, f.elem, path + ".")
            elif elem_type == "int":
                _check_value(item, Field(f.key, "int"), schema, path)
            elif elem_type == "api.ImageData":
                if not isinstance(item, str):
                    raise _type_error(item, schema, path, "api.ImageData")
                check_base64(item)
        return
    else:
        ok = True
    if not ok:
        raise _type_error(value, schema, path, t)


# The Go request structs (api/types.go), reduced to the fields whose types matter here.
MESSAGE: Final = Schema(
    "Message",
    "api.Message",
    (
        Field("role", "string"),
        Field("content", "string"),
        Field("thinking", "string"),
        Field("images", "[]api.ImageData"),
        Field("tool_calls", "any"),
        Field("tool_name", "string"),
        Field("tool_call_id", "string"),
    ),
)
_COMMON: Final = (
    Field("model", "string"),
    Field("stream", "bool"),
    Field("format", "any"),
    Field("keep_alive", "custom"),
    Field("options", "object"),
    Field("think", "any"),
    Field("truncate", "bool"),
    Field("shift", "bool"),
    Field("logprobs", "bool"),
    Field("top_logprobs", "int"),
)
GENERATE: Final = Schema(
    "GenerateRequest",
    "api.GenerateRequest",
    (
        *_COMMON,
        Field("prompt", "string"),
        Field("suffix", "string"),
        Field("system", "string"),
        Field("template", "string"),
        Field("context", "[]int"),
        Field("raw", "bool"),
        Field("images", "[]api.ImageData"),
    ),
)
CHAT: Final = Schema(
    "ChatRequest",
    "api.ChatRequest",
    (*_COMMON, Field("messages", "[]api.Message", MESSAGE), Field("tools", "any")),
)
SHOW: Final = Schema(
    "ShowRequest",
    "api.ShowRequest",
    (
        Field("model", "string"),
        Field("name", "string"),
        Field("system", "string"),
        Field("template", "string"),
        Field("verbose", "bool"),
        Field("options", "object"),
    ),
)


EMBED: Final = Schema(
    "EmbedRequest",
    "api.EmbedRequest",
    (
        Field("model", "string"),
        Field("input", "any"),
        Field("truncate", "bool"),
        Field("dimensions", "int"),
        Field("keep_alive", "custom"),
        Field("options", "object"),
    ),
)
EMBEDDINGS: Final = Schema(
    "EmbeddingRequest",
    "api.EmbeddingRequest",
    (
        Field("model", "string"),
        Field("prompt", "string"),
        Field("keep_alive", "custom"),
        Field("options", "object"),
    ),
)


def canonical_keys(obj: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Map case-insensitively matched keys to their Go field key (last one wins, as in Go)."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        f = schema.field(key)
        out[f.key if f else key] = value
    return out


# --- options ----------------------------------------------------------------------------------

_INT_OPTIONS: Final = frozenset(
    (
        "num_keep",
        "seed",
        "num_predict",
        "top_k",
        "repeat_last_n",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "num_thread",
        "draft_num_predict",
    )
)
_FLOAT_OPTIONS: Final = frozenset(
    (
        "top_p",
        "min_p",
        "typical_p",
        "temperature",
        "repeat_penalty",
        "presence_penalty",
        "frequency_penalty",
    )
)
_BOOL_OPTIONS: Final = frozenset(("use_mmap", "numa", "low_vram", "f16_kv", "vocab_only"))


def check_options(options: Mapping[str, Any]) -> None:
    """Ollama's ``Options.FromMap`` type checks; its errors become HTTP 500."""
    for key, value in options.items():
        if value is None:
            continue
        if key in _INT_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GoDecodeError(f'option "{key}" must be of type integer')
        elif key in _FLOAT_OPTIONS:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise GoDecodeError(f'option "{key}" must be of type float32')
        elif key in _BOOL_OPTIONS:
            if not isinstance(value, bool):
                raise GoDecodeError(f'option "{key}" must be of type boolean')
        elif key == "stop":
            if not isinstance(value, list):
                raise GoDecodeError(f'option "{key}" must be of type array')
            if not all(isinstance(item, str) for item in value):
                raise GoDecodeError(f'option "{key}" must be of an array of strings')
