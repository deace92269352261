"""Line breaking that works for Chinese and Japanese, not only for space-separated languages.

rich wraps text at spaces. A Chinese sentence has none, so rich treats it as one long word and
moves it whole to the next line, leaving the line before it half empty::

    你好！我是 qwen2.5:0.5b，由 ollamakit
    模擬器提供的模型。今天想聊些什麼呢？請記

Here every CJK character is a break opportunity, and closing punctuation (``，。！？」``…)
stays with the character before it, so it never starts a line. :func:`units` does the
splitting; :func:`install` makes rich's wrapper use it (the chat process only; it changes
where lines break, never the text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

_CJK: Final = (
    "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
)
_CLOSE: Final = "，。、；：！？」』）】》〉〕｝,.;:!?)\\]}%"
UNIT: Final = re.compile(rf"\s*(?:[{_CJK}][{_CLOSE}]*|[^\s{_CJK}]+[{_CLOSE}]*)\s*")


def units(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, unit)`` like ``rich._wrap.words``, with each CJK character its own unit.

    >>> [u for _, _, u in units("你好！我是 qwen，好")]
    ['你', '好！', '我', '是 ', 'qwen，', '好']
    >>> [u for _, _, u in units("plain words here")]
    ['plain ', 'words ', 'here']
    """
    position = 0
    match = UNIT.match(text, position)
    while match is not None:
        start, end = match.span()
        yield start, end, match.group(0)
        match = UNIT.match(text, end)


def install() -> None:
    """Let rich break lines between CJK characters (idempotent; a no-op if rich changed)."""
    try:
        import rich._wrap as wrap
    except ImportError:  # pragma: no cover - rich reorganised its internals
        return
    if getattr(wrap, "words", None) is units or not hasattr(wrap, "words"):
        return
    wrap.words = units
