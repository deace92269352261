"""Every ui function at 80 and at 200 columns: nothing wider than the terminal, nothing lost.

Built with :meth:`Terminal.for_test` (a terminal, so rich lays out for its width).
"""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from ollamakit.errors import UsageError
from ollamakit.ui import Terminal, WrapText, hanging, wrap
from ollamakit.ui.tables import (
    cell,
    first_fitting,
    fit_columns,
    fits,
    layout_width,
    min_width,
    name_column,
    new_table,
    print_lines,
    print_table,
    print_text,
)

LONG_EN = (
    "The proxy accepted the password but could not reach Ollama on the server; check that "
    "proxy_pass points at 127.0.0.1:11434 and that ollama serve is running there. " * 3
)
LONG_ZH = (
    "代理伺服器接受了密碼，但無法連到伺服器上的 Ollama；請確認 proxy_pass 指向 127.0.0.1:11434。"
) * 3
NAMES = ["hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M", "qwen2.5:0.5b", "deepseek-r1:1.5b"]

WIDTHS = [80, 200]


class Failure(UsageError):
    """An error with the message and fix given (the real ones build them from a catalogue)."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message)
        self._hint = hint

    @property
    def hint(self) -> str:
        return self._hint


def _lines(term: Terminal) -> list[str]:
    return (term.stdout_text() + term.stderr_text()).splitlines()


def _fit(term: Terminal, width: int) -> list[str]:
    lines = _lines(term)
    assert lines
    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, too_wide
    return lines


def _words(text: str) -> str:
    return "".join(text.split())


@pytest.mark.parametrize("width", WIDTHS)
def test_messages(width: int) -> None:
    term = Terminal.for_test(width=width, isatty=True)
    term.warn(LONG_EN)
    term.info(LONG_ZH)
    term.print_error(Failure(LONG_EN, hint=LONG_ZH))
    term.print_unexpected(RuntimeError(LONG_EN))
    lines = _fit(term, width)
    assert _words(LONG_ZH) in _words("".join(lines))


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("text", [LONG_EN, LONG_ZH])
def test_wrap_and_hanging(width: int, text: str) -> None:
    term = Terminal.for_test(width=width, isatty=True)
    for line in wrap(text, term.width):
        assert cell_len(line) <= width
    for line in hanging(text, term.wrap_width(), 10):
        assert cell_len(line) <= width - 10
    assert _words("".join(wrap(text, term.width))) == _words(text)


@pytest.mark.parametrize("width", WIDTHS)
def test_wrap_text_fills_lines_with_chinese(width: int) -> None:
    term = Terminal.for_test(width=width, isatty=True)
    term.console().print(WrapText(LONG_ZH))
    lines = _fit(term, width)
    assert _words("".join(lines)) == _words(LONG_ZH)
    assert all(cell_len(line) >= width - 12 for line in lines[:-1]), lines
    # print_text and print_lines: the same text, no trailing blanks
    term = Terminal.for_test(width=width, isatty=True)
    print_text(term.stdout, WrapText(LONG_ZH))
    print_lines(term.stdout, Text(LONG_EN))
    assert all(line == line.rstrip() for line in _fit(term, width))


def _table(fold: bool = False) -> list[Table]:
    table = new_table("Models", compact=True)
    name_column(table, "Model", NAMES, fold=fold)
    for header in ("TTFT ms", "Eval tok/s", "Prompt tok/s", "OK"):
        table.add_column(header, justify="right")
    for name in NAMES:
        table.add_row(cell(name), "123.4", "45.6", "7890.1", "3/3")
    return [table]


@pytest.mark.parametrize("width", WIDTHS)
def test_tables_keep_names_whole(width: int) -> None:
    term = Terminal.for_test(width=width, isatty=True)
    tables = first_fitting(term.stdout, _table, lambda: _table(fold=True))
    assert fits(term.stdout, *tables) and layout_width(term.stdout) == width
    assert min_width(term.stdout, tables[0]) <= width
    for table in tables:
        print_table(term.stdout, table)
    lines = _fit(term, width)
    for name in NAMES:
        assert any(name in line for line in lines), (name, lines)


@pytest.mark.parametrize("width", WIDTHS)
def test_fit_columns_never_cuts_below_a_minimum(width: int) -> None:
    term = Terminal.for_test(width=width, isatty=True)
    (table,) = _table()
    fit_columns(term.stdout, table, width)
    print_lines(term.stdout, table)
    _fit(term, width)


def test_into_a_pipe_a_table_is_as_wide_as_it_needs() -> None:
    term = Terminal.for_test(width=40, isatty=False)
    (table,) = _table()
    print_table(term.stdout, table)
    assert any(NAMES[0] in line and "3/3" in line for line in _lines(term))
