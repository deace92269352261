"""Making text from a server safe to show: no control character reaches a terminal.

A model name, a version string, a reply or an error body is whatever the server sent. Written
as it is, ``ESC ] 0 ; title BEL`` renames the window, ``ESC [ ? 1049 h`` switches to the
alternate screen, a carriage return overwrites what was printed before, and a bidi override
(U+202E) makes ``gpt-4`` read as something else. :func:`clean` is applied to every such text
where it is turned into output (``ui.terminal``, the chat views, the tables, the doctor's lines),
so the rule holds in one place whatever the command.

What happens to what:

* complete escape sequences (CSI ``ESC [``, OSC ``ESC ]``, DCS/SOS/PM/APC strings, two-byte
  ``ESC x``, and their 8-bit C1 forms) are removed whole: their payload is not text (a string
  sequence without its terminator loses only its introducer, so no text after it is lost);
* any other C0 control (except ``\\t``, and ``\\n`` in multi-line text) and DEL become their
  visible Unicode "control pictures" (``␛``, ``␇``, ``␍``…); ``\\r\\n`` becomes ``\\n``;
* C1 controls (U+0080–U+009F) and the bidi embeddings, overrides and isolates
  (U+202A–U+202E, U+2066–U+2069) become U+FFFD ``�``;
* everything else — CJK, emoji with their joiners and variation selectors, accents — is kept.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["clean", "clean_line", "json_safe", "needs_cleaning"]

# Sequences first (removed whole), then single characters (made visible).
_SEQUENCE: Final = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])"  # OSC, DCS, SOS, PM, APC ...
    r"(?:[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c))?"  # ... up to BEL or ST; unterminated:
    # only the introducer goes (the rest stays visible, no text is lost)
    r"|\x1b[ -/]*[0-~]"  # two-byte (and nF) escapes: ESC 7, ESC ( B, ESC c
)
_UNSAFE: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NL: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ANY: Final = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def needs_cleaning(text: str) -> bool:
    """Whether :func:`clean` would change anything but ``\\n`` (a fast check).

    >>> needs_cleaning("plain\\n你好"), needs_cleaning("x\\x1b[0m")
    (False, True)
    """
    return _UNSAFE_KEEP_NL.search(text) is not None


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def clean(text: str, *, multiline: bool = True) -> str:
    """``text`` with every control character removed or made visible (see the module doc).

    >>> clean("llama3\\x1b]0;pwned\\x07:8b")
    'llama3:8b'
    >>> clean("\\x1b[?1049hhello\\x1b[0m")
    'hello'
    >>> clean("line one\\r\\nline two\\rX\\x08")
    'line one\\nline two␍X␈'
    >>> clean("a\\nb", multiline=False)
    'a␊b'
    >>> clean("tab\\tkept")
    'tab\\tkept'
    >>> clean("gpt-\\u202e4\\u202c \\x85")
    'gpt-�4� �'
    >>> clean("你好！👋🏽 👩‍💻 é")
    '你好！👋🏽 👩\\u200d💻 é'
    >>> clean("\\x9b31mred\\x1bc")
    'red'
    >>> clean("\\x1b]0;no terminator 你好")
    '0;no terminator 你好'
    """
    if not _ANY.search(text) or (multiline and not _UNSAFE_KEEP_NL.search(text)):
        return text  # the common case: nothing to do
    text = _SEQUENCE.sub("", text)
    if multiline:
        text = text.replace("\r\n", "\n")
        return _UNSAFE_KEEP_NL.sub(_visible, text)
    return _UNSAFE.sub(_visible, text)


def clean_line(text: str) -> str:
    """:func:`clean` for a text that must stay on one line (a model name, a version).

    >>> clean_line("qwen\\n2")
    'qwen␊2'
    """
    return clean(text, multiline=False)


_JSON_UNSAFE: Final = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_safe(document: str) -> str:
    """A JSON text (``ensure_ascii=False``) with C1 controls, DEL and bidi overrides written
    as ``\\uXXXX`` escapes: the same data, safe to show on a terminal (``json.dumps``
    already escapes C0 controls, ``ESC`` included).

    >>> import json
    >>> json_safe(json.dumps({"m": "a\x1b\x9b\u202e你"}, ensure_ascii=False))
    '{"m": "a\\\\u001b\\\\u009b\\\\u202e你"}'
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", document)
