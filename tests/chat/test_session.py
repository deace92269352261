"""The conversation rules (``chat.session``): what is sent, kept, retried and exported."""

from __future__ import annotations

import pytest

from ollamakit.chat.session import (
    COMMANDS,
    ChatSession,
    LineAssembler,
    OptionError,
    Reply,
    ReplyStats,
    block_is_open,
    message_text,
    parse_command,
    parse_option,
    unwrap_block,
)


def reply(text: str, **kwargs: object) -> Reply:
    return Reply("m:1b", text, **kwargs)  # type: ignore[arg-type]


def test_every_request_carries_system_prompt_and_history() -> None:
    s = ChatSession("m:1b", system="Be brief.")
    s.record("one", reply("first answer"))
    s.record("two", reply("second answer"))
    assert s.messages_for("three") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "three"},
    ]
    s.system = None
    assert s.messages_for("x")[0] == {"role": "user", "content": "one"}


def test_thinking_is_not_sent_back() -> None:
    s = ChatSession("m:1b")
    s.record("q", reply("a", thinking="hmm"))
    assert s.messages_for("next")[1] == {"role": "assistant", "content": "a"}


def test_interrupted_reply_with_text_is_kept() -> None:
    s = ChatSession("m:1b")
    s.record("tell me", reply("Once upon a", interrupted=True))
    assert s.pending is None
    assert s.messages_for("go on")[1]["content"] == "Once upon a"
    assert s.totals.interrupted == 1


def test_interrupted_before_any_text_waits_for_retry() -> None:
    s = ChatSession("m:1b")
    s.record("tell me", reply("  ", interrupted=True))
    assert s.turns == []
    assert s.pending == "tell me"
    assert s.take_retry() == "tell me"


def test_failure_keeps_message_and_counts() -> None:
    s = ChatSession("m:1b")
    s.record("ok", reply("fine"))
    s.record_failure("lost")
    assert [t.user for t in s.turns] == ["ok"]
    assert s.pending == "lost"
    assert s.totals.failed == 1
    assert s.take_retry() == "lost"
    s.record("lost", reply("found"))  # the retried message got its answer
    assert s.pending is None
    assert [t.user for t in s.turns] == ["ok", "lost"]


def test_retry_after_success_takes_the_turn_back() -> None:
    s = ChatSession("m:1b")
    s.record("a", reply("1"))
    s.record("b", reply("2"))
    assert s.take_retry() == "b"
    assert [t.user for t in s.turns] == ["a"]


def test_clear_keeps_model_system_and_options() -> None:
    s = ChatSession("m:1b", system="sys")
    s.set_option("temperature", "0.5")
    s.record("a", reply("1"))
    s.record_failure("b")
    s.clear()
    assert (s.turns, s.pending) == ([], None)
    assert (s.model, s.system, s.options) == ("m:1b", "sys", {"temperature": 0.5})


def test_options() -> None:
    s = ChatSession("m:1b")
    assert s.request_options() is None
    assert s.set_option("temperature", "0.7") == 0.7
    assert s.set_option("num_ctx", "8192") == 8192
    assert s.set_option("seed", "42") == 42
    assert s.set_option("top_p", "0.9") == 0.9
    assert s.request_options() == {"temperature": 0.7, "num_ctx": 8192, "seed": 42, "top_p": 0.9}
    assert s.set_option("seed", "off") is None
    assert "seed" not in s.options


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("temperature", "hot", "chat.set_float"),
        ("temperature", "3", "chat.set_range"),
        ("temperature", "nan", "chat.set_float"),
        ("top_p", "0", "chat.set_range"),
        ("num_ctx", "0", "chat.set_range"),
        ("num_ctx", "2.5", "chat.set_int"),
        ("top_k", "5", "chat.set_unknown"),
    ],
)
def test_bad_options(name: str, value: str, key: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_option(name, value)
    assert info.value.key == key


def test_totals() -> None:
    s = ChatSession("m:1b")
    s.record(
        "a",
        reply(
            "x",
            stats=ReplyStats(
                total_ms=1000, ttft_ms=100, eval_count=20, eval_ms=500, prompt_eval_count=10
            ),
        ),
    )
    s.record(
        "b",
        reply("y", stats=ReplyStats(total_ms=500, ttft_ms=300, eval_count=30, eval_ms=500)),
    )
    s.record("c", reply("z", interrupted=True, stats=ReplyStats(total_ms=200, chunks=3)))
    totals = s.totals
    assert (totals.replies, totals.interrupted, totals.reply_tokens) == (3, 1, 50)
    assert totals.eval_tps == pytest.approx(50.0)
    assert totals.median_ttft_ms == 200
    assert totals.wall_ms == 1700
    assert totals.prompt_tokens == 10


@pytest.mark.parametrize(
    ("line", "name", "arg"),
    [
        ("/bye", "bye", ""),
        ("/exit", "bye", ""),
        ("/?", "help", ""),
        ("  /SET temperature 0.2 ", "set", "temperature 0.2"),
        ("/system You are a pirate.  Arr.", "system", "You are a pirate.  Arr."),
        ("/save ~/chat log.md", "save", "~/chat log.md"),
    ],
)
def test_commands(line: str, name: str, arg: str) -> None:
    command = parse_command(line)
    assert command is not None and command.spec is not None
    assert (command.spec.name, command.arg) == (name, arg)


def test_not_commands() -> None:
    assert parse_command("hello /bye") is None
    assert parse_command("//bye") is None
    assert message_text("//bye") == "/bye"
    assert parse_command("/usr/bin/env\nis a path") is None  # pasted text is a message


def test_unknown_command_suggestion() -> None:
    command = parse_command("/sytem be nice")
    assert command is not None
    assert command.spec is None
    assert command.suggestion == "system"
    nothing = parse_command("/xyzzy")
    assert nothing is not None and nothing.suggestion is None


def test_every_command_has_help_text() -> None:
    from ollamakit.i18n import set_language, t

    for lang in ("en", "zh-TW"):
        set_language(lang)
        for spec in COMMANDS:
            assert t(spec.help_key)
    set_language("en")


def test_blocks() -> None:
    assert block_is_open('"""')
    assert block_is_open('"""\nfirst')
    assert not block_is_open('"""\nfirst\n"""')
    assert unwrap_block('"""\n  indented\n\nkept\n"""') == "  indented\n\nkept"
    assert unwrap_block('"""first line\nsecond"""') == "first line\nsecond"


def test_line_assembler() -> None:
    a = LineAssembler()
    lines = ["one\n", "\n", '"""\n', "two\n", "\n", "three\n", '"""\n', '"""four"""\n', "five"]
    assert [m for line in lines if (m := a.feed(line)) is not None] == [
        "one",
        "two\n\nthree",
        "four",
        "five",
    ]
    assert a.flush() is None


def test_markdown_export() -> None:
    s = ChatSession("m:1b")
    s.record("line one\nline two", reply("Answer.", thinking="let me see\nok"))
    s.record("cut", reply("Part", interrupted=True))
    text = s.to_markdown(server="http://h", title="T", you="You", interrupted="interrupted")
    assert "```text\nline one\nline two\n```" in text
    assert "> let me see\n> ok" in text
    assert "## m:1b\n\nPart\n\n*(interrupted)*" in text
