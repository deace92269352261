"""The chat without a terminal (piped stdin) and ``--auto``: subprocesses against the simulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support import assert_no_traceback, run_program

from .conftest import FAST_REPLY, SLOW_REPLY, chat_requests, only_transcript


def test_piped_lines_are_messages_with_plain_replies(chat_sim: Any, isolated_env: Path) -> None:
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input='Hello\n\n"""\nblock line 1\nblock line 2\n"""\n//slash text\n',
    )
    assert result.returncode == 0, result.output
    assert_no_traceback(result)
    # stdout holds the replies and nothing else: no prompt, no colour, no stats.
    assert result.stdout == f"{FAST_REPLY}\n" * 3
    assert "\x1b[" not in result.stdout
    assert "Transcript:" in result.stderr
    contents = [r.body["messages"][-1]["content"] for r in chat_requests(chat_sim)]
    assert contents == ["Hello", "block line 1\nblock line 2", "/slash text"]
    assert len(chat_requests(chat_sim)[-1].body["messages"]) == 5  # multi-turn here too
    events = only_transcript(isolated_env)
    assert [e["event"] for e in events].count("reply") == 3


def test_piped_commands_work_and_bye_stops(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input="/model other\nHi\n/bye\nnever sent\n",
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "Other model here.\n"
    assert "Now chatting with other:1b" in result.stderr
    assert [r.body["model"] for r in chat_requests(chat_sim)] == ["other:1b"]


def test_piped_save_never_overwrites_unless_forced(chat_sim: Any, tmp_path: Path) -> None:
    target = tmp_path / "chat.md"
    target.write_text("keep me", encoding="utf-8")
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input=f"Hi\n/save {target}\n",
    )
    assert result.returncode == 0, result.output
    assert target.read_text(encoding="utf-8") == "keep me"
    assert f"Use /save! {target} to overwrite it" in " ".join(result.stderr.split())
    assert result.stdout == f"{FAST_REPLY}\n"
    forced = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input=f"Hi\nAgain\n/save! {target}\n",
    )
    assert forced.returncode == 0, forced.output
    assert "Saved 2 exchanges" in " ".join(forced.stderr.split())
    assert target.read_text(encoding="utf-8").startswith("# Chat transcript")


def test_model_by_the_number_models_shows(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input="/models\n/model 4\nHi\n/model 99\n",
    )
    assert result.returncode == 0, result.output
    row = next(line for line in result.stderr.splitlines() if line.lstrip().startswith("4 "))
    fourth = row.split()[1]
    assert fourth == "other:1b", result.stderr  # the fourth model of the list, by number
    assert "● the model in use" in result.stderr  # the legend under the table
    assert f"Now chatting with {fourth}" in result.stderr
    assert [r.body["model"] for r in chat_requests(chat_sim)] == [fourth]
    assert 'No model "99"' in result.stderr


def test_piped_timeout_explains_the_silence_and_exits_1(chat_sim: Any, isolated_env: Path) -> None:
    """A stalled server: a note after half the timeout (no token), then the timeout, exit 1."""
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "stall", "--timeout", "2"],
        input="Hi\n",
    )
    assert result.returncode == 1, result.output
    assert_no_traceback(result)
    err = " ".join(result.stderr.split())
    assert "No token from stall:1b for 1 s" in err
    assert "/api/ps lists it (loading or loaded)" in err  # the watch asked the server
    assert "gives up after 2 s without a token (--timeout, CHAT_TIMEOUT_SECONDS)" in err
    assert "sent nothing for 2 s" in err
    assert "CHAT_TIMEOUT_SECONDS (chat)" in err
    assert "[" not in result.stdout and "No token" not in result.stdout  # replies only
    assert any(r.path == "/api/ps" for r in chat_sim.requests())
    events = only_transcript(isolated_env)
    assert events[-2]["event"] == "error" and events[-2]["kind"] == "ReadTimeout"


def test_timeout_from_the_environment_is_validated(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "fast"],
        input="Hi\n",
        env={"CHAT_TIMEOUT_SECONDS": "soon"},
    )
    assert result.returncode == 2
    assert "CHAT_TIMEOUT_SECONDS" in result.stderr


def test_piped_failure_sets_exit_status_1(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--base-url", chat_sim.url, "--model", "broken"],
        input="First\nSecond\n",
    )
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.stderr.count("The server failed in the middle of the reply") == 2


def test_model_from_environment_else_the_newest(chat_sim: Any) -> None:
    from_env = run_program(
        ["chat", "--base-url", chat_sim.url], input="Hi\n", env={"OLLAMA_MODEL": "other"}
    )
    assert from_env.returncode == 0, from_env.output
    assert from_env.stdout == "Other model here.\n"
    newest = run_program(["chat", "--base-url", chat_sim.url], input="")
    assert newest.returncode == 0, newest.output
    assert "Using " in newest.stderr and "newest of 6 models" in newest.stderr


def test_unknown_model_and_unreachable_server_exit_2(chat_sim: Any) -> None:
    unknown = run_program(["chat", "--base-url", chat_sim.url, "--model", "nosuch"], input="Hi\n")
    assert unknown.returncode == 2
    assert 'No model "nosuch" on the server. Available: ' in unknown.stderr
    assert "ollama pull nosuch" in unknown.stderr
    down = run_program(["chat", "--base-url", "http://127.0.0.1:9"], input="Hi\n")
    assert down.returncode == 2
    assert "Connection refused" in down.stderr
    for result in (unknown, down):
        assert_no_traceback(result)


def test_root_script_help_documents_exit_status() -> None:
    result = run_program(["--help"], script="hi-ai.py")
    assert result.returncode == 0
    assert "--auto" in result.stdout and "--greeting" in result.stdout
    assert "Exit status" in result.stdout


def test_auto_stalled_and_unknown_models(chat_sim: Any) -> None:
    started = time.monotonic()
    result = run_program(
        [
            "chat",
            "--auto",
            "--base-url",
            chat_sim.url,
            "--model",
            "fast",
            "--model",
            "stall:1b",
            "--model",
            "broken",
        ],
        env={"GREETING_TIMEOUT_SECONDS": "1.5"},
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.output
    assert_no_traceback(result)
    assert elapsed < 12  # the stalled model cost its 1.5 s, not the simulator's 30 s stall
    out = result.stdout
    assert FAST_REPLY in out  # replies stream under each model's name
    assert "\nHello,\n" in out  # the two chunks the stalled model sent before it stalled
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isalpha()}
    assert "ok" in rows["fast:1b"].split()
    assert "timeout" in rows["stall:1b"].split()
    # (an unknown --model is exit 2 before any greeting since issue 9: test_select_cli.py)
    assert "error:" in rows["broken:1b"]
    assert "2 of 3 models did not answer" in result.stderr
    assert "GREETING_TIMEOUT_SECONDS=1.5" in result.stderr
    greeted = chat_requests(chat_sim)
    assert all(r.body["messages"] == [{"role": "user", "content": "Hello!"}] for r in greeted)
    stalled = next(r for r in greeted if r.model == "stall:1b")
    assert stalled.outcome == "stall" and stalled.chunks == 2


def test_auto_greets_every_model_with_the_greeting(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--auto", "--base-url", chat_sim.url, "--greeting", "Hi!", "--system", "Brief."],
        env={"GREETING_TIMEOUT_SECONDS": "1"},
    )
    assert result.returncode == 1  # stall:1b and broken:1b are among them
    greeted = {r.model for r in chat_requests(chat_sim)}
    assert greeted == {"fast:1b", "slow:1b", "think:1b", "other:1b", "broken:1b", "stall:1b"}
    first = chat_requests(chat_sim)[0]
    assert first.body["messages"] == [
        {"role": "system", "content": "Brief."},
        {"role": "user", "content": "Hi!"},
    ]


def test_auto_into_a_pipe_marks_thinking_and_keeps_lines_whole(chat_sim: Any) -> None:
    greeting = "Hello there! This greeting is long enough to push the header past 80 columns."
    models = ["--model", "think", "--model", "fast", "--model", "stall", "--think", "on"]
    result = run_program(
        ["chat", "--auto", "--base-url", chat_sim.url, *models, "--greeting", greeting],
        env={"GREETING_TIMEOUT_SECONDS": "1"},
    )
    assert result.returncode == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Greeting 3 model(s) on ") and lines[0].endswith(
        "(at most 1 s each)"
    )
    start = next(i for i, line in enumerate(lines) if line.startswith("think:1b "))
    block = lines[start + 1 : lines.index("", start)]
    assert block and all(line.startswith("┊ ") for line in block)  # thinking, marked
    answer = lines[lines.index("", start) + 1]
    assert answer and not answer.startswith("┊")
    assert FAST_REPLY in lines  # a reply on one line: not wrapped at 80 columns
    summary = result.stderr.strip().splitlines()
    assert len(summary) == 1 and "did not answer" in summary[0] and "=60." in summary[0]
    for line in [*lines, *result.stderr.splitlines()]:
        assert line == line.rstrip(), repr(line)


def test_auto_all_answered_exit_0_and_zh_tw_greeting(chat_sim: Any) -> None:
    result = run_program(
        ["chat", "--auto", "--base-url", chat_sim.url, "--model", "fast", "--lang", "zh-TW"],
    )
    assert result.returncode == 0, result.output
    assert "全部 1 個模型都有回應" in result.stdout
    (request,) = chat_requests(chat_sim)
    assert request.body["messages"][-1]["content"] == "你好！"


def test_auto_unreachable_server_exit_2() -> None:
    result = run_program(["chat", "--auto", "--base-url", "http://127.0.0.1:9"])
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "Connection refused" in result.stderr


def test_ctrl_c_with_piped_input_stops_the_run(chat_sim: Any, isolated_env: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ollamakit", "chat", "--base-url", chat_sim.url, "--model", "slow"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("Spell the alphabet\nNever sent\n")
        proc.stdin.flush()
        seen = ""
        while "charlie" not in seen:  # replies stream to stdout as they arrive
            char = proc.stdout.read(1)
            assert char, seen
            seen += char
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    # stdout holds the (partial) reply only; the mark is on stderr
    assert "interrupted" not in seen + rest
    assert SLOW_REPLY.startswith((seen + rest).strip())
    assert "[interrupted]" in err
    events = only_transcript(isolated_env)
    assert [e["event"] for e in events] == ["start", "user", "reply", "end"]
    assert events[2]["interrupted"] is True
    assert len(chat_requests(chat_sim)) == 1
