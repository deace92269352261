"""Streaming rendering (``chat.render``): however a reply is chunked, it is drawn once, whole."""

from __future__ import annotations

import io
import random
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from ollamakit.chat.render import (
    LineSplitter,
    MarkdownSplitter,
    PlainReplyView,
    RichReplyView,
    stats_line,
)
from ollamakit.chat.session import ReplyStats

DOC = """# Setting up

First paragraph, which
spans two lines.

- item one
- item two

  continued item two

```python
def greet(name: str) -> str:

    return f"Hello, {name}!"
```
Text right after the fence.

| a | b |
|---|---|
| 1 | 2 |

~~~
tilde fence
~~~

    indented code

The end."""


def chunkings(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.choice([1, 1, 2, 3, 5, 8, 20])
        out.append(text[i : i + n])
        i += n
    return out


def split_all(chunks: list[str]) -> list[str]:
    s = MarkdownSplitter()
    blocks = [b for c in chunks for b in s.feed(c)]
    return blocks + s.flush()


def test_blocks_do_not_depend_on_chunking() -> None:
    whole = split_all([DOC])
    for seed in range(30):
        assert split_all(chunkings(DOC, seed)) == whole
    assert split_all(list(DOC)) == whole


def test_blocks_keep_all_text_and_respect_fences() -> None:
    blocks = split_all([DOC])
    assert "\n\n".join(blocks).split() == DOC.split()
    code = next(b for b in blocks if b.startswith("```python"))
    assert code.endswith("```")  # the blank line inside the fence did not split it
    assert "Text right after the fence." in blocks
    item = next(b for b in blocks if b.startswith("- item one"))
    assert "continued item two" in item  # indented continuation stays with its list


def test_unclosed_fence_is_one_block() -> None:
    assert split_all(["```\ncode\n\nmore code\n"]) == ["```\ncode\n\nmore code"]


def test_thinking_lines() -> None:
    s = LineSplitter()
    out = [line for chunk in chunkings("a b\n\n\n\nc d\ne", 1) for line in s.feed(chunk)]
    assert out + s.flush() == ["a b", "", "c d", "e"]


def render(chunks: list[str], outcome: str = "done", thinking: list[str] = ()) -> str:  # type: ignore[assignment]
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None, force_terminal=False)
    view = RichReplyView(console, model="m")
    view.start()
    for piece in thinking:
        view.thinking(piece)
    for piece in chunks:
        view.content(piece)
    stats = ReplyStats(
        total_ms=1200, ttft_ms=80, chunks=9, eval_count=9, eval_ms=300, decode_tps=28.0
    )
    view.finish(outcome, stats)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_rich_view_output_is_the_same_however_it_streamed() -> None:
    whole = render([DOC])
    assert render(list(DOC)) == whole
    assert render(chunkings(DOC, 7)) == whole
    for word in ("Setting", "spans", "greet", "tilde", "indented", "The end."):
        assert whole.count(word) == 1, word
    # both rates, labelled as in the benchmark (the line wraps at 80 columns)
    joined = " ".join(line.strip() for line in whole.splitlines())
    assert (
        "9 tokens · eval rate 30.0 tok/s · client decode 28.0 tok/s · first token 80 ms · 1.20 s"
        in joined
    )
    assert max(len(line) for line in whole.splitlines()) <= 80


def test_rich_view_thinking_then_answer() -> None:
    out = render(["Answer ", "here."], thinking=["\nLet me ", "think.\n", "Done"])
    lines = [line.rstrip() for line in out.splitlines()]
    assert lines[:3] == ["┊ Let me think.", "┊ Done", ""]
    assert lines[3] == "Answer here."


def test_rich_view_interrupted_keeps_partial_text() -> None:
    out = render(["Half a sent"], outcome="interrupted")
    assert "Half a sent" in out
    assert "⏹ interrupted" in out
    assert "interrupted after 9 chunks" in out


def test_plain_view() -> None:
    out, err = io.StringIO(), io.StringIO()
    view = PlainReplyView(out, err, None)
    view.start()
    view.thinking("\n  hmm")
    view.content("\n\nHello")
    view.content(" world")
    view.finish("done", None)
    assert out.getvalue() == "Hello world\n"
    assert err.getvalue() == "hmm\n"
    out2, err2 = io.StringIO(), io.StringIO()
    cut = PlainReplyView(out2, err2, None)
    cut.content("Partial")
    cut.finish("interrupted", None)
    # stdout holds replies only; the mark is a note, on stderr
    assert out2.getvalue() == "Partial\n"
    assert err2.getvalue() == "[interrupted]\n"


@pytest.mark.parametrize(
    ("stats", "outcome", "expected"),
    [
        (ReplyStats(total_ms=50, chunks=0), "failed", "0 chunks · 50 ms"),
        (
            ReplyStats(
                total_ms=2000,
                ttft_ms=1500,
                chunks=5,
                eval_count=4,
                eval_ms=100,
                done_reason="length",
            ),
            "done",
            "4 tokens · eval rate 40.0 tok/s · first token 1.50 s · 2.00 s · stopped at the"
            " length limit",
        ),
    ],
)
def test_stats_line(stats: ReplyStats, outcome: str, expected: str) -> None:
    assert stats_line(stats, outcome).startswith(expected)  # type: ignore[arg-type]


def test_chinese_text_fills_each_line() -> None:
    text = (
        "你好！我是 qwen2.5:0.5b，由 ollamakit 模擬器提供的模型。"
        "今天想聊些什麼呢？請記得每次執行結果都可能不同。"
    )
    buffer = io.StringIO()
    console = Console(file=buffer, width=40, color_system=None, force_terminal=False)
    view = RichReplyView(console, model="m", show_stats=False)
    view.start()
    for ch in text:
        view.content(ch)
    view.finish("done", None)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines() if line.strip()]
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(cell_len(line) >= 37 for line in lines[:-1]), lines
    assert not any(line.startswith(("，", "。", "！", "？")) for line in lines)


def test_auto_printer_wraps_words_across_chunks() -> None:
    from ollamakit.chat.auto import _Printer

    buffer = io.StringIO()
    console = Console(file=buffer, width=30, color_system=None, force_terminal=True)
    printer = _Printer(console)
    words = [
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
    ]
    for i, word in enumerate(words):
        printer.write(("" if i == 0 else " ") + word, "content")
    printer.end_line()
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 30 for line in lines), lines
    assert " ".join(line.strip() for line in lines).split() == words


def _printed(terminal: bool, chunks: list[tuple[str, str]], width: int = 30) -> list[str]:
    from ollamakit.chat.auto import _Printer

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=terminal)
    printer = _Printer(console)
    printer.header("m")
    for text, kind in chunks:
        printer.write(text, kind)  # type: ignore[arg-type]
    printer.end_line()
    return buffer.getvalue().splitlines()[1:]  # after the model's rule


THOUGHT = [
    ("Okay, the user ", "thinking"),
    ("says hello.  \n\nI should", "thinking"),
    (" greet them back.\n", "thinking"),
    ("\n\nHello! How can I ", "content"),
    ("help you today?", "content"),
]


def test_auto_marks_thinking_when_not_a_terminal() -> None:
    lines = _printed(False, THOUGHT)
    assert lines == [
        "┊ Okay, the user says hello.",
        "┊",
        "┊ I should greet them back.",
        "",
        "Hello! How can I help you today?",  # not wrapped at 30 columns: a pipe
    ]


def test_auto_marks_thinking_on_a_terminal_and_wraps_it() -> None:
    lines = _printed(True, THOUGHT, width=24)
    thinking, answer = lines[: lines.index("")], lines[lines.index("") + 1 :]
    assert all(line.startswith("┊") for line in thinking)
    assert " ".join(line.removeprefix("┊").strip() for line in thinking if line != "┊") == (
        "Okay, the user says hello. I should greet them back."
    )
    assert not any(line.startswith("┊") for line in answer)
    assert " ".join(answer) == "Hello! How can I help you today?"


@pytest.mark.parametrize("terminal", [False, True])
def test_auto_lines_never_end_in_spaces(terminal: bool) -> None:
    chunks = [("Word " * 3, "content"), ("and   \n", "content"), ("more  ", "content")]
    lines = _printed(terminal, [*THOUGHT, *chunks], width=20)
    assert [line for line in lines if line != line.rstrip()] == []


def test_auto_rows_stop_short_of_the_last_column() -> None:
    """A row that filled the last column could be taken by the terminal for one it wrapped
    itself; copying would then join its last word with the next row's first ("Ishould")."""
    text = "x" * 28 + " I should go on"  # "I" would end in column 30
    lines = _printed(True, [(text, "content")], width=30)
    assert lines == ["x" * 28, "I should go on"]
    assert all(len(line) < 30 for line in lines)


def test_auto_keeps_a_word_together_when_it_arrives_in_pieces() -> None:
    # "luck" and "!" are separate tokens: "!" must not start the next row alone
    pieces = ["Hello!", " How", " can", " I", " help", "? Good", " luck", "!", " Bye", "."]
    lines = _printed(True, [(p, "content") for p in pieces], width=31)
    assert lines == ["Hello! How can I help? Good", "luck! Bye."]


@pytest.mark.parametrize("width", [7, 12, 20, 31, 80])
def test_cjk_wrapping_breaks_latin_text_where_rich_does(width: int) -> None:
    """ui.wrap.WrapText changes where Chinese text breaks, nothing else: for space-separated
    text it breaks exactly where rich's own Text does (compared through rich's public API)."""
    from rich.text import Text

    from ollamakit.ui.wrap import WrapText

    text = "I should  go on, with   more words: here\tand there (really). x supercalifragilistic "

    def lines(renderable: Text) -> list[str]:
        console = Console(width=width, color_system=None, record=True, file=io.StringIO())
        console.print(renderable)
        return console.export_text().splitlines()

    assert lines(WrapText(text)) == lines(Text(text))


def test_rich_itself_is_not_patched() -> None:
    """Making a chat view leaves rich's own wrapping alone for the rest of the process."""
    from rich.text import Text

    RichReplyView(Console(file=io.StringIO(), width=40), model="m")
    console = Console(width=20, color_system=None, record=True, file=io.StringIO())
    console.print(Text("ab 你好你好你好你好你好你好"))
    assert console.export_text().splitlines()[0].rstrip() == "ab"


def test_a_reply_row_that_fills_the_terminal_ends_in_a_line_break() -> None:
    """At exactly 80 columns a word may end in the last column: the space after it becomes
    the line break (a real newline in the output, not a terminal's soft wrap)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None, force_terminal=False)
    view = RichReplyView(console, model="m", show_stats=False)
    view.start()
    view.content("x" * 78 + " I should go on.")
    view.finish("done", None)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    assert lines[lines.index("x" * 78 + " I") + 1] == "should go on."


EVIL = "\x1b]0;pwned\x07\x1b[?1049h\x9b2J\u202e"


@pytest.mark.parametrize("terminal", [True, False])
def test_views_show_no_escape_sequence_from_a_reply(terminal: bool) -> None:
    """Thinking and answer text from the server are cleaned as they arrive, piece by piece
    (a sequence split across two chunks included); CJK and emoji stay."""
    out, err = io.StringIO(), io.StringIO()
    view: RichReplyView | PlainReplyView
    if terminal:
        console = Console(file=out, width=80, color_system=None, force_terminal=True)
        view = RichReplyView(console, model="m", show_stats=False)
    else:
        view = PlainReplyView(out, err)
    view.start()
    view.thinking(f"想一想 {EVIL}🤔\n")
    for piece in ["你好", EVIL[:3], EVIL[3:], "！👋", "\x1b", "[31m world"]:
        view.content(piece)
    view.finish("done", None)
    text = out.getvalue() + err.getvalue()
    if terminal:  # the live region's own cursor movement is rich's; drop it before looking
        text = re.sub(r"\x1b\[\d*[AKG]|\x1b\[\?25[lh]|\r", "", text)
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text, repr(text)
    assert "\u202e" not in text
    assert "你好" in text and "👋" in text and "想一想" in text and "🤔" in text
