"""The interactive chat, driven in a pseudo-terminal against the simulator (real HTTP).

Each test types into ``python -m ollamakit chat`` as a user would and checks three things: what
appeared on the screen, what the server was asked (the simulator's request log) and what the
transcript file holds.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pexpect

from .conftest import FAST_REPLY, Chat, chat_requests, only_transcript, spawn_chat


def test_reply_streams_and_second_turn_carries_the_first(
    start_chat: Any, chat_sim: Any, isolated_env: Path
) -> None:
    chat = start_chat("--model", "fast")
    chat.say("Hello there", FAST_REPLY)
    chat.say("And a second question", FAST_REPLY)
    assert chat.bye() == 0

    first, second = chat_requests(chat_sim)
    assert first.body["model"] == "fast:1b"
    assert [m["role"] for m in first.body["messages"]] == ["user"]
    assert [m["role"] for m in second.body["messages"]] == ["user", "assistant", "user"]
    assert second.body["messages"][0]["content"] == "Hello there"
    assert second.body["messages"][1]["content"] == FAST_REPLY
    assert second.body["messages"][2]["content"] == "And a second question"

    events = only_transcript(isolated_env)
    assert [e["event"] for e in events] == ["start", "user", "reply", "user", "reply", "end"]
    assert events[2]["content"] == FAST_REPLY
    assert events[2]["interrupted"] is False
    assert events[2]["stats"]["eval_count"] > 0
    assert events[-1]["exit_status"] == 0


def test_reply_appears_token_by_token(start_chat: Any) -> None:
    chat = start_chat("--model", "slow:1b")
    chat.send("Spell the alphabet")
    chat.child.expect_exact("alpha")
    first_word = time.monotonic()
    chat.child.expect_exact("zulu")
    last_word = time.monotonic()
    # 26 words at 20 tokens/s: the last one comes more than a second after the first. A reply
    # printed only once complete would show both at the same instant.
    assert last_word - first_word > 0.6
    chat.child.expect_exact("first token")
    chat.prompt()
    assert chat.bye() == 0


def test_model_switch_keeps_history(start_chat: Any, chat_sim: Any) -> None:
    chat = start_chat("--model", "fast:1b")
    chat.say("First", FAST_REPLY)
    chat.send("/model other")
    chat.child.expect_exact("Now chatting with other:1b")
    chat.prompt()
    chat.say("Second", "Other model here.")
    chat.send("/model nosuch")
    chat.child.expect_exact('No model "nosuch"')
    chat.prompt()
    assert chat.bye() == 0
    first, second = chat_requests(chat_sim)
    assert (first.body["model"], second.body["model"]) == ("fast:1b", "other:1b")
    assert len(second.body["messages"]) == 3


def test_save_writes_markdown(start_chat: Any, tmp_path: Path) -> None:
    target = tmp_path / "saved chat.md"
    chat = start_chat("--model", "fast:1b", "--system", "Be brief.")
    chat.say("What is the answer?", FAST_REPLY)
    chat.send(f"/save {target}")
    chat.child.expect_exact("Saved 1 exchange to")  # singular
    chat.prompt()
    chat.send("/system Be verbose.")
    chat.child.expect_exact("System prompt set")
    chat.prompt()
    chat.say("And now?", FAST_REPLY)
    # the file exists: asked first; "n" keeps it as it was
    chat.send(f"/save {target}")
    chat.child.expect_exact("Overwrite it? [y/N]")
    chat.send("n")
    chat.child.expect_exact("Not saved")
    chat.prompt()
    assert "Be verbose." not in target.read_text(encoding="utf-8")
    chat.send(f"/save {target}")
    chat.child.expect_exact("Overwrite it? [y/N]")
    chat.send("y")
    chat.child.expect_exact("Saved 2 exchanges to")
    chat.prompt()
    assert chat.bye() == 0
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Chat transcript")
    assert "- model: `fast:1b`" in text
    assert "## You\n\nWhat is the answer?\n" in text
    assert f"## fast:1b\n\n{FAST_REPLY}\n" in text
    # each system prompt where it was set: the first at the top, the second between the turns
    first, second = text.index("> **system:** Be brief."), text.index("> **system:** Be verbose.")
    assert first < text.index("What is the answer?") < second < text.index("And now?")


def test_ctrl_c_stops_the_reply_and_keeps_the_session(
    start_chat: Any, chat_sim: Any, isolated_env: Path
) -> None:
    chat = start_chat("--model", "slow:1b")
    chat.send("Spell the alphabet")
    chat.child.expect_exact("charlie")
    chat.child.sendcontrol("c")
    chat.child.expect_exact("interrupted")
    chat.prompt()
    # Still in the chat, with the partial reply in the conversation.
    chat.send("/model fast")
    chat.prompt()
    chat.say("Go on", FAST_REPLY)
    assert chat.bye() == 0

    first, second = chat_requests(chat_sim)
    assert first.outcome == "client_closed"  # the stream was closed: Ollama stops generating
    assert first.eval_count is None
    partial = second.body["messages"][1]
    assert partial["role"] == "assistant"
    assert partial["content"].startswith("alpha bravo charlie")
    assert "zulu" not in partial["content"]

    events = only_transcript(isolated_env)
    replies = [e for e in events if e["event"] == "reply"]
    assert replies[0]["interrupted"] is True
    assert replies[0]["content"] == partial["content"]
    assert replies[1]["interrupted"] is False


def test_ctrl_c_at_empty_prompt_and_unknown_commands_send_nothing(
    start_chat: Any, chat_sim: Any
) -> None:
    chat = start_chat("--model", "fast:1b")
    chat.child.sendcontrol("c")
    chat.child.expect_exact("/bye or press Ctrl-D")
    chat.prompt()
    chat.send("/modle other")
    chat.child.expect_exact("Did you mean /model?")
    chat.prompt()
    chat.send("/frobnicate")
    chat.child.expect_exact("Unknown command /frobnicate")
    chat.prompt()
    chat.child.sendcontrol("d")  # Ctrl-D leaves, like /bye
    chat.child.expect_exact("Transcript:")
    chat.child.expect(pexpect.EOF)
    chat.child.close()
    assert chat.child.exitstatus == 0
    assert chat_requests(chat_sim) == []


def test_error_mid_reply_keeps_the_message_for_retry(
    start_chat: Any, chat_sim: Any, isolated_env: Path
) -> None:
    chat = start_chat("--model", "broken:1b")
    chat.send("Please answer")
    chat.child.expect_exact("The server failed in the middle of the reply")
    chat.child.expect_exact("/retry sends it again")
    chat.prompt()
    chat.send("/model fast")
    chat.prompt()
    chat.say("/retry", FAST_REPLY)
    assert chat.bye() == 0

    failed, retried = chat_requests(chat_sim)
    assert failed.outcome == "error"
    # The failed exchange is not in the history; the message is sent again, once.
    assert [m["content"] for m in retried.body["messages"]] == ["Please answer"]
    events = [e["event"] for e in only_transcript(isolated_env)]
    assert events[:3] == ["start", "user", "error"]
    assert "retry" in events


def test_multiline_block_and_bracketed_paste(start_chat: Any, chat_sim: Any) -> None:
    chat = start_chat("--model", "fast:1b")
    for line in ['"""', "line one", "  line two", '"""']:
        chat.send(line)
    chat.child.expect_exact(FAST_REPLY)
    chat.child.expect_exact("first token")
    chat.prompt()
    # A terminal wraps pasted text in ESC[200~ ... ESC[201~; its newlines must not send it.
    chat.child.send("\x1b[200~pasted one\npasted two\x1b[201~")
    chat.send("")
    chat.child.expect_exact(FAST_REPLY)
    chat.child.expect_exact("first token")
    chat.prompt()
    assert chat.bye() == 0
    block, paste = chat_requests(chat_sim)
    assert block.body["messages"][-1]["content"] == "line one\n  line two"
    assert paste.body["messages"][-1]["content"] == "pasted one\npasted two"


def test_options_system_and_think_reach_the_server(start_chat: Any, chat_sim: Any) -> None:
    chat = start_chat("--model", "think:1b")
    chat.send("/set temperature 0.3")
    chat.child.expect_exact("temperature = 0.3")
    chat.prompt()
    chat.send("/set top_p 7")
    chat.child.expect_exact("out of range")
    chat.prompt()
    chat.send("/system You are terse.")
    chat.child.expect_exact("System prompt set")
    chat.prompt()
    chat.send("Think about this")
    chat.child.expect_exact("┊ ")  # thinking text, in its gutter
    chat.child.expect_exact("first token")
    chat.prompt()
    chat.send("/think off")
    chat.child.expect_exact("Thinking off")
    chat.prompt()
    chat.send("/stats")
    chat.child.expect_exact("temperature=0.3")
    chat.prompt()
    assert chat.bye() == 0
    (request,) = chat_requests(chat_sim)
    assert request.body["options"] == {"temperature": 0.3}
    assert request.body["messages"][0] == {"role": "system", "content": "You are terse."}
    assert "think" not in request.body  # not sent until /think says so


def test_picker_when_no_model_is_given(chat_sim: Any) -> None:
    child = spawn_chat(chat_sim.url)
    try:
        child.expect_exact("Chat with which model?")
        child.send("other\r")
        chat = Chat(child)
        chat.prompt()
        chat.say("Hi", "Other model here.")
        assert chat.bye() == 0
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_sigterm_mid_reply_still_completes_the_transcript(
    start_chat: Any, isolated_env: Path
) -> None:
    chat = start_chat("--model", "slow:1b")
    chat.send("Spell the alphabet")
    chat.child.expect_exact("charlie")
    chat.child.kill(signal.SIGTERM)
    chat.child.expect(pexpect.EOF)
    chat.child.close()
    assert chat.child.exitstatus == 128 + signal.SIGTERM
    events = only_transcript(isolated_env)
    assert [e["event"] for e in events] == ["start", "user", "reply", "end"]
    assert events[2]["interrupted"] is True
    assert events[2]["content"].startswith("alpha bravo charlie")
    assert events[3]["exit_status"] == 128 + signal.SIGTERM


def test_a_silent_reply_gets_a_note_then_times_out(start_chat: Any) -> None:
    chat = start_chat("--model", "stall:1b", "--timeout", "3")
    chat.send("Hello?")
    chat.child.expect_exact("No token from stall:1b")  # in the live region, under the text
    chat.child.expect_exact("sent nothing for 3 s")
    chat.child.expect_exact("/retry")
    chat.prompt()
    assert chat.bye() == 0
