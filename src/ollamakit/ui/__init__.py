"""Everything about the terminal: who we write to, how text wraps, tables, safe server text.

* :mod:`.terminal` — :class:`Terminal` (stdout/stderr consoles, tty facts, width, colour,
  language), built once by ``cli.main`` and passed to every command.
* :mod:`.wrap` — CJK-aware line breaking: :func:`wrap`, :func:`hanging`, :class:`WrapText`.
* :mod:`.tables` — generic table layout (names never break, numbers give way, fold last).
* :mod:`.sanitize` — :func:`clean`: no control character from a server reaches a terminal.

This package depends only on rich, ``errors`` and ``i18n``.
"""

from __future__ import annotations

from ollamakit.ui.sanitize import clean, clean_line
from ollamakit.ui.terminal import Terminal, make_console
from ollamakit.ui.wrap import WrapText, hanging, wrap, wrap_text

__all__ = [
    "Terminal",
    "WrapText",
    "clean",
    "clean_line",
    "hanging",
    "make_console",
    "wrap",
    "wrap_text",
]
