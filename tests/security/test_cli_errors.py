"""Inputs that used to end in "Unexpected error … This is a bug": each has its own message and
exit status 2, through the real program, and ``--debug`` adds a traceback but never changes
the exit status.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ollamakit.sim import ThreadedSim
from tests.support import CLIResult, assert_no_traceback, run_program

BUG = "This is a bug"


def _check(result: CLIResult, *words: str) -> None:
    assert result.returncode == 2, result.output
    assert BUG not in result.output
    assert_no_traceback(result)
    assert "✘" in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def _same_with_debug(args: list[str], env: dict[str, str] | None = None, stdin: str = "") -> None:
    debug = run_program([*args, "--debug"], env=env, input=stdin)
    assert debug.returncode == 2, debug.output
    assert BUG not in debug.output


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["doctor", "--base-url", "http://[::1"], {}, ["IPv6"]),
        (["doctor", "--base-url", "http:/host.example"], {}, ["'://'"]),
        (["doctor", "--base-url", "http://exa mple.com"], {}, ["host name"]),
        (["doctor"], {"GREETING_TIMEOUT_SECONDS": "nan"}, ["GREETING_TIMEOUT_SECONDS=nan"]),
        (["doctor"], {"GREETING_TIMEOUT_SECONDS": "-1"}, ["positive"]),
        (["doctor"], {"GREETING_TIMEOUT_SECONDS": "9999999999"}, ["at most"]),
        (["chat", "--model", "m"], {"BENCHMARK_TIMEOUT_SECONDS": "9999999999"}, ["at most"]),
        (["bench", "--auto"], {"BENCHMARK_TIMEOUT_SECONDS": "1e300"}, ["at most"]),
        (["bench", "--auto", "--timeout", "9999999999"], {}, ["--timeout", "at most"]),
    ],
)
def test_bad_settings_get_their_own_message(
    args: list[str], env: dict[str, str], words: list[str]
) -> None:
    _check(run_program(args, env=env), *words)
    if args[0] != "doctor":  # doctor's are the same code path; keep the test quick
        _same_with_debug(args, env)


def test_a_binary_or_directory_env_file(tmp_path: Path) -> None:
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"\xff\xfe\x00\x80OLLAMA_BASE_URL")
    _check(run_program(["doctor", "--env-file", str(binary)]), "UTF-8")
    _check(run_program(["doctor", "--env-file", str(tmp_path)]), "directory")
    _same_with_debug(["doctor", "--env-file", str(binary)])


def test_a_suite_that_is_a_directory_or_not_utf8(
    tmp_path: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim().url
    folder = tmp_path / "suite.toml"
    folder.mkdir()
    garbage = tmp_path / "garbage.toml"
    garbage.write_bytes(b"\xff\xfe\x80")
    for suite in (folder, garbage):
        args = ["bench", "--auto", "--no-save", "--base-url", url, "--suite", str(suite)]
        _check(run_program(args), str(suite))


def test_chat_with_a_home_that_is_a_file(
    tmp_path: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim().url
    home = tmp_path / "home-file"
    home.write_text("not a folder")
    args = ["chat", "--base-url", url, "--model", "quick:1b"]
    env = {"OLLAMAKIT_HOME": str(home)}
    _check(run_program(args, env=env, input="hi\n"), "OLLAMAKIT_HOME", "transcript")
    _same_with_debug(args, env, "hi\n")


def test_chat_and_bench_with_a_read_only_home(
    readonly_dir: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    url = start_sim().url
    env = {"OLLAMAKIT_HOME": str(readonly_dir / "home")}
    chat = ["chat", "--base-url", url, "--model", "quick:1b"]
    _check(run_program(chat, env=env, input="hi\n"), "OLLAMAKIT_HOME")
    _same_with_debug(chat, env, "hi\n")
    bench = ["bench", "--auto", "--base-url", url, "--model", "quick:1b", "--runs", "1"]
    _check(run_program(bench, env=env), "OLLAMAKIT_HOME", "--no-save")
    _same_with_debug(bench, env)


def test_debug_keeps_the_exit_status_of_a_connection_failure() -> None:
    # Port 9 on loopback: nothing listens (discard); a refused connection is exit 2 either way.
    plain = run_program(["doctor", "--base-url", "http://127.0.0.1:9"])
    debug = run_program(["chat", "--auto", "--base-url", "http://127.0.0.1:9", "--debug"])
    assert plain.returncode == 2
    assert debug.returncode == 2, debug.output


@pytest.mark.parametrize("flag", ["--seed", "--num-predict"])
def test_numbers_beyond_64_bits_are_usage_errors(flag: str) -> None:
    result = run_program(["bench", "--auto", flag, "99999999999999999999999"])
    _check(result, flag, "at most")
