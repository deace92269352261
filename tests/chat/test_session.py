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


# --------------------------------------------------------------------------- the context watch


def counted(prompt: int, tokens: int, text: str = "answer", **kwargs: object) -> Reply:
    stats = ReplyStats(total_ms=1.0, eval_count=tokens, eval_ms=1.0, prompt_eval_count=prompt)
    return Reply("m:1b", text, stats=stats, **kwargs)  # type: ignore[arg-type]


def test_a_prompt_that_stops_growing_is_a_cut_only_when_the_history_only_grew() -> None:
    s = ChatSession("m:1b")
    s.record("one", counted(20, 40))
    s.record("two", counted(70, 40))
    assert not s.context.last_cut
    s.record("three", counted(60, 40))  # smaller than 70 + its 40-token reply: cut
    assert s.context.last_cut and s.context.cuts == 1
    # after /clear, /model, /system or a /retry that took a turn back, no comparison is made
    for change in ("clear", "model", "system", "retry"):
        s = ChatSession("m:1b")
        s.record("one", counted(20, 40))
        s.record("two", counted(70, 40))
        if change == "clear":
            s.clear()
        elif change == "model":
            s.model = "other:1b"
        elif change == "system":
            s.set_system("Be brief.")
        else:
            s.take_retry()
        s.record("three", counted(10, 40))
        assert not s.context.last_cut, change


def test_a_failed_request_between_keeps_the_comparison() -> None:
    s = ChatSession("m:1b")
    s.record("one", counted(20, 40))
    s.record_failure("two")
    s.record("two", counted(30, 40))  # the history is the same as before the failure: cut
    assert s.context.last_cut


def test_thinking_is_not_sent_back_so_it_is_not_counted() -> None:
    s = ChatSession("m:1b")
    s.record("one", counted(20, 200, thinking="long reasoning"))
    s.record("two", counted(30, 40))  # the 200 tokens were mostly thinking: no cut
    assert not s.context.last_cut
    s.record("three", counted(25, 40))  # smaller than the previous prompt: cut
    assert s.context.last_cut


def test_the_known_context_size_tells_a_cut_when_counts_leave_the_cache_out() -> None:
    """Ollama 0.30.0 counts only the uncached prompt tokens: the sum sent bounds the prompt."""
    s = ChatSession("m:1b")
    s.context.num_ctx = 100
    s.record("one", counted(20, 40), counts_cached=False)
    s.record("two", counted(15, 40), counts_cached=False)  # 20 + 37 sent: not less than that
    assert not s.context.last_cut and s.context.used_tokens == 57 + 40
    s.record("three", counted(12, 40), counts_cached=False)  # 57 + 37 = 94 <= 100
    assert not s.context.last_cut
    s.record("four", counted(12, 40), counts_cached=False)  # 94 + 37 > 100: it was cut
    assert s.context.last_cut and s.context.cuts == 1
