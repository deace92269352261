"""The Terminal object and what every console it makes guarantees (no emoji codes, clean text)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.text import Text

from ollamakit.errors import UsageError
from ollamakit.ui import Terminal, clean
from ollamakit.ui.terminal import make_console


class Failure(UsageError):
    """An error with the message and fix given (the real ones build them from a catalogue)."""

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message)
        self._hint = hint

    @property
    def hint(self) -> str:
        return self._hint


def test_for_test_terminal_reports_what_it_was_built_with() -> None:
    term = Terminal.for_test(width=93, isatty=True, stdin_isatty=False, language="zh-TW")
    assert (term.width, term.stdout_isatty, term.stderr_isatty) == (93, True, True)
    assert not term.stdin_isatty and not term.interactive
    assert term.language == "zh-TW" and not term.color
    assert term.wrap_width() == 93 and term.wrap_width(stderr=True) == 93
    pipe = Terminal.for_test(width=93)
    assert pipe.wrap_width() is None and not pipe.stdout.is_terminal
    assert Terminal.for_test(color=True, isatty=True).color


def test_from_env_reads_the_streams_it_is_given() -> None:
    out, err = io.StringIO(), io.StringIO()
    term = Terminal.from_env(stdin=io.StringIO(), stdout=out, stderr=err)
    assert not term.stdout_isatty and not term.stdin_isatty
    term.stdout.print("result")
    term.info("message")
    assert out.getvalue() == "result\n" and err.getvalue() == "message\n"


def test_extra_consoles_share_the_stream_and_soft_wrap_only_into_a_pipe() -> None:
    term = Terminal.for_test(width=20, isatty=True)
    console = term.console()
    assert console.file is term.stdout.file and console.width == 20
    assert not console.soft_wrap and term.console(stderr=True).file is term.stderr.file
    assert Terminal.for_test(width=20).console().soft_wrap


@pytest.mark.parametrize("stream", ["stdout", "stderr", "console", "warn", "info"])
def test_emoji_codes_stay_literal(stream: str) -> None:
    """``:smile:`` in a message (or a model name) is not turned into an emoji by rich."""
    term = Terminal.for_test()
    message = "model :smile: says :thumbs_up:"
    if stream == "warn":
        term.warn(message)
    elif stream == "info":
        term.info(message)
    elif stream == "console":
        term.console().print(message)
    else:
        getattr(term, stream).print(message)
    assert message in term.stdout_text() + term.stderr_text()
    assert "😄" not in term.stdout_text() + term.stderr_text()


def test_every_print_is_sanitised_and_markup_in_messages_is_literal() -> None:
    term = Terminal.for_test(isatty=True, color=True)
    term.stdout.print(Text("title\x1b]0;pwned\x07 你好 🦙"))
    term.warn("[bold]not markup[/] \x1b[?1049h")
    term.print_error(Failure("bad\x1b[2J name", hint="fix \x9b31m it"))
    out, err = term.stdout_text(), term.stderr_text()
    assert "title" in out and "你好 🦙" in out
    assert "[bold]not markup[/]" in err and "fix" in err and "it" in err
    # Colour codes are rich's own; none of the server's sequences are left.
    for text in (out, err):
        assert "]0;" not in text and "?1049h" not in text and "[2J" not in text
        assert "\x07" not in text and "\x9b" not in text


def test_make_console_without_a_tty_draws_no_escape_codes() -> None:
    out = io.StringIO()
    make_console(out).print("[bold]x[/]")
    assert out.getvalue() == "x\n"


@pytest.mark.parametrize("width", [80, 200])
def test_a_command_runs_on_a_terminal_built_by_the_test(width: int) -> None:
    """``cli.main(terminal=...)``: the command writes where the test says, at its width,
    and lays out for a terminal (the doctor's value column wraps, nothing is wider)."""
    from rich.cells import cell_len

    from ollamakit import cli
    from ollamakit.sim import ModelSpec, SimConfig, run_in_thread

    spec = ModelSpec("m:1b", load_ms=1, eval_tps=2000, reply_tokens=8)
    with run_in_thread(SimConfig(models=(spec,))) as sim:
        term = Terminal.for_test(width=width, isatty=True, stdin_isatty=False)
        status = cli.main(["doctor", "--base-url", sim.url], terminal=term)
    out = term.stdout_text()
    assert status == 0, out + term.stderr_text()
    assert "m:1b" in out and sim.url in out
    # The spinner's cursor movements are in the capture too: measure the text only.
    assert all(cell_len(line) <= width for line in clean(out.replace("\r", "\n")).splitlines())
    history = Terminal.for_test(width=width)
    assert cli.main(["history"], terminal=history) == 0
    assert str(Path.cwd()) not in history.stdout_text() and history.stderr_text()
