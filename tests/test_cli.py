"""The umbrella command and the root scripts as a user meets them, and the message catalogues.

Subprocess tests (no terminal) for what every command shares: ``--help`` and ``--version``
work, argument errors exit 2, a bad setting exits 2 with a message that names the key and
masks the password (never a traceback), and the language follows ``--lang`` or the locale.
The catalogue tests keep every message in both languages with the same placeholders.
"""

from __future__ import annotations

import base64
import re
import string
from pathlib import Path
from typing import Any

import pytest

from ollamakit import __version__
from ollamakit.i18n import LANGUAGES, catalogue, domains
from tests.support import REPO, assert_no_traceback, run_program

# --------------------------------------------------------------------------- help and version


@pytest.mark.parametrize(
    ("args", "script", "words"),
    [
        (["--help"], None, ["bench", "chat", "doctor", "sim", "--base-url"]),
        (["doctor", "--help"], None, ["--json", "--no-generate", "--ca-bundle"]),
        (["--help"], "ollama-benchmark.py", ["--auto", "--base-url"]),
        (["--help"], "hi-ai.py", ["--auto", "--base-url"]),
    ],
)
def test_help_exits_zero(args: list[str], script: str | None, words: list[str]) -> None:
    result = run_program(args, script=script)
    assert result.returncode == 0, result.output
    assert_no_traceback(result)
    for word in words:
        assert word in result.stdout


@pytest.mark.parametrize("script", [None, "ollama-benchmark.py", "hi-ai.py"])
def test_version(script: str | None) -> None:
    result = run_program(["--version"], script=script)
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize(
    ("args", "script"),
    [
        (["--no-such-option"], None),
        (["doctor", "--no-such-option"], None),
        (["no-such-command"], None),
        (["--no-such-option"], "ollama-benchmark.py"),
        (["--no-such-option"], "hi-ai.py"),
    ],
)
def test_unknown_option_exits_2(args: list[str], script: str | None) -> None:
    result = run_program(args, script=script)
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "usage:" in result.stderr


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("args", "script"),
    [(["doctor"], None), (["--auto"], "ollama-benchmark.py"), (["--auto"], "hi-ai.py")],
)
def test_bad_base_url_exits_2_with_masked_value(args: list[str], script: str | None) -> None:
    env = {"OLLAMA_BASE_URL": "ftp://ollama-user:Canary-9x@ollama.example.com"}
    result = run_program(args, env=env, script=script)
    assert result.returncode == 2, result.output
    assert_no_traceback(result)
    assert "OLLAMA_BASE_URL=ftp://ollama-user:***@ollama.example.com" in result.stderr
    assert "Example: OLLAMA_BASE_URL=https://" in result.stderr
    assert "Canary-9x" not in result.output


def test_bad_port_in_dotenv_exits_2() -> None:
    Path(".env").write_text("OLLAMA_BASE_URL=http://192.168.1.100:99999\n")
    result = run_program(["doctor"])
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "OLLAMA_BASE_URL=http://192.168.1.100:99999" in result.stderr
    assert "65535" in result.stderr


def test_bad_timeout_exits_2() -> None:
    result = run_program(["doctor"], env={"BENCHMARK_TIMEOUT_SECONDS": "nan"})
    assert result.returncode == 2
    assert_no_traceback(result)
    assert "BENCHMARK_TIMEOUT_SECONDS=nan" in result.stderr


# --------------------------------------------------------------------------- language


BAD_URL = {"OLLAMA_BASE_URL": "ftp://host.example"}


def test_lang_flag_gives_chinese() -> None:
    result = run_program(["doctor", "--lang", "zh-TW"], env=BAD_URL)
    assert result.returncode == 2
    assert "設定值無效" in result.stderr
    assert "範例" in result.stderr


def test_locale_gives_chinese() -> None:
    result = run_program(["doctor"], env={**BAD_URL, "LANG": "zh_TW.UTF-8"})
    assert "設定值無效" in result.stderr
    help_text = run_program(["--help"], env={"LANG": "zh_TW.UTF-8"})
    assert "所有指令共用的選項" in help_text.stdout


def test_ollamakit_lang_beats_locale_and_flag_beats_both() -> None:
    env = {**BAD_URL, "LANG": "en_US.UTF-8", "OLLAMAKIT_LANG": "zh-TW"}
    assert "設定值無效" in run_program(["doctor"], env=env).stderr
    assert "Invalid setting" in run_program(["doctor", "--lang", "en"], env=env).stderr


def test_lang_flag_localises_help() -> None:
    result = run_program(["--lang", "zh-TW", "--help"])
    assert "所有指令共用的選項" in result.stdout


# --------------------------------------------------------------------------- catalogues


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_the_catalogues_are_found() -> None:
    assert {"errors", "doctor", "bench", "report"} <= set(domains())


@pytest.mark.parametrize("domain", domains())
def test_every_catalogue_entry_has_both_languages_and_same_placeholders(domain: str) -> None:
    """The one catalogue check, for every ``i18n/messages/*.toml`` (each a separate case).

    Every entry is a table with exactly the languages in ``LANGUAGES``, none empty, and the
    same ``{placeholders}`` in each (a missing one is a KeyError in front of a user).
    """
    entries = catalogue(domain)
    assert entries, f"{domain}: empty catalogue"
    problems = []
    for key, entry in entries.items():
        if not isinstance(entry, dict):
            problems.append(f"{domain}.{key}: not a table")
            continue
        if set(entry) != set(LANGUAGES):
            problems.append(f"{domain}.{key}: languages {sorted(entry)}")
        for lang in LANGUAGES:
            if not str(entry.get(lang) or "").strip():
                problems.append(f"{domain}.{key}: no {lang}")
        if all(lang in entry for lang in LANGUAGES):
            en, zh = (_placeholders(entry[lang]) for lang in LANGUAGES)
            if en != zh:
                problems.append(f"{domain}.{key}: en {sorted(en)} != zh-TW {sorted(zh)}")
    assert problems == []


_LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+)\.([A-Za-z0-9_]+)["']""")


def test_every_literal_message_key_exists() -> None:
    """A typo in ``t("domain.key")`` would only show up as a KeyError in front of a user."""
    missing = []
    for path in sorted((REPO / "src" / "ollamakit").rglob("*.py")):
        for domain, key in _LITERAL_KEY.findall(path.read_text(encoding="utf-8")):
            if domain not in domains() or key not in catalogue(domain):
                missing.append(f"{path.relative_to(REPO)}: {domain}.{key}")
    assert missing == []


def test_doctor_step_titles_exist() -> None:
    from ollamakit.diagnostics import STEPS

    doctor = catalogue("doctor")
    for name in (*STEPS, "warning"):
        assert f"title_{name}" in doctor


# --------------------------------------------------------------------------- the canary


CANARY = "Canary-Pw-5150"


def test_canary_password_appears_in_no_output_and_no_file(isolated_env: Path) -> None:
    """Every command, healthy and failing, with a password in the URL: it shows up nowhere.

    Not in stdout/stderr (also with ``--debug``), not in files the commands write, not under
    ``OLLAMAKIT_HOME`` (history database, transcripts).
    """
    from ollamakit.sim import ModelSpec, SimConfig, run_in_thread
    from tests.proxyish import Canned, CannedServer

    spec = ModelSpec("m:1b", load_ms=1, eval_tps=2000, reply_tokens=8)
    with run_in_thread(SimConfig(models=(spec,))) as sim:
        url = sim.url.replace("http://", f"http://ollama-user:{CANARY}@")
        quick_bench = ["--auto", "--runs", "1", "--warmup", "0", "--num-predict", "8"]
        commands: list[tuple[list[str], str | None, str | None]] = [
            (["doctor"], None, None),
            (["doctor", "--json"], None, None),
            (["doctor", "--debug"], None, None),
            (["bench", *quick_bench, "--output", "run.json", "--output", "run.md"], None, None),
            (["bench", *quick_bench, "--output", "run.html", "--output", "run.csv"], None, None),
            (quick_bench, "ollama-benchmark.py", None),
            (["chat", "--auto"], None, None),
            (["--auto"], "hi-ai.py", None),
            (["chat", "--model", "m:1b"], None, "hello\n/save chat.md\n/bye\n"),
            (["history"], None, None),
            (["report"], None, None),
            (["report", "--format", "json"], None, None),
        ]
        for args, script, stdin in commands:
            local = args[0] in ("history", "report")  # no server options there
            server = [] if local else ["--base-url", url]
            result = run_program([*args, *server], script=script, input=stdin)
            assert result.returncode == 0, (args, script, result.output)
            assert CANARY not in result.output, (args, script)
            assert_no_traceback(result)
    unauthorized = Canned(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    with CannedServer({"*": unauthorized}) as server:
        url = server.url.replace("http://", f"http://ollama-user:{CANARY}@")
        # --debug shows tracebacks and a request log: the likeliest place for a leak.
        for args in (["doctor"], ["doctor", "--debug"], ["bench", "--auto", "--debug"]):
            result = run_program([*args, "--base-url", url])
            assert result.returncode != 0
            assert CANARY not in result.output, args
        result = run_program(["chat", "--auto", "--debug", "--base-url", url])
        assert CANARY not in result.output
    written = [p for root in (Path.cwd(), isolated_env) if root.exists() for p in root.rglob("*")]
    files = [p for p in written if p.is_file()]
    names = {p.name for p in files}
    assert {"run.json", "run.md", "run.html", "run.csv", "chat.md"} <= names, names
    for path in files:
        assert CANARY.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------- --debug


def test_debug_logs_every_request_without_the_password() -> None:
    """``--debug`` promises a request log: one line per request (doctor's probes included),
    and for a stream the time to its headers and, at the end, its chunks and total time."""
    from ollamakit.sim import ModelSpec, SimConfig, run_in_thread

    spec = ModelSpec("m:1b", load_ms=1, eval_tps=2000, reply_tokens=8)
    with run_in_thread(SimConfig(models=(spec,))) as sim:
        url = sim.url.replace("http://", f"http://ollama-user:{CANARY}@")
        doctor = run_program(["doctor", "--debug", "--base-url", url])
        chat = run_program(["chat", "--auto", "--debug", "--base-url", url])
    assert doctor.returncode == 0, doctor.output
    log = [x for x in doctor.stderr.splitlines() if x.startswith("ollamakit.http: ")]
    request = re.compile(rf"ollamakit\.http: GET {re.escape(sim.url)}/\S* -> 200 \([\d.]+ ms\)")
    # auth probe, GET /, /api/version, /api/tags and five round-trip probes
    assert sum(bool(request.fullmatch(x)) for x in log) >= 9, log
    generate = f"ollamakit.http: POST {sim.url}/api/generate"
    assert any(re.fullmatch(rf"{generate} -> 200, headers after [\d.]+ ms", x) for x in log)
    assert any(
        re.fullmatch(rf"{generate}: stream complete, \d+ chunks in [\d.]+ ms", x) for x in log
    ), log
    # The async client (chat --auto, bench) logs the same way.
    assert chat.returncode == 0, chat.output
    assert f"ollamakit.http: POST {sim.url}/api/chat -> 200, headers after" in chat.stderr
    assert f"ollamakit.http: POST {sim.url}/api/chat: stream complete" in chat.stderr
    basic = base64.b64encode(f"ollama-user:{CANARY}".encode()).decode()
    for result in (doctor, chat):
        assert CANARY not in result.output and basic not in result.output
        assert "Authorization" not in result.output


def test_unconfigured_default_url_points_a_newcomer_to_env_or_the_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from ollamakit import cli, config

    with socket.socket() as sock:  # a port that is certainly closed
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setattr(config, "DEFAULT_BASE_URL", closed)
    assert cli.main(["bench", "--auto"]) == 2
    err = capsys.readouterr().err
    assert "Connection refused" in err
    assert "OLLAMA_BASE_URL is not set" in err and "uv run ollamakit sim" in err
    # Configured explicitly: the user knows where they pointed it, so no such hint.
    assert cli.main(["bench", "--auto", "--base-url", closed]) == 2
    assert "OLLAMA_BASE_URL is not set" not in capsys.readouterr().err


# --------------------------------------------------------------------------- help layout


def _help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], **kw: Any) -> str:
    from ollamakit import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(**kw)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _commands() -> list[str]:
    from ollamakit.cli import COMMANDS

    return [c.name for c in COMMANDS]


HELP_CASES = [
    ([], None),
    *[([name], None) for name in _commands()],
    ([], "bench"),
    ([], "chat"),
]


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
@pytest.mark.parametrize(("args", "only"), HELP_CASES)
def test_help_fits_80_columns_by_display_width_in_both_languages(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lang: str,
    args: list[str],
    only: str | None,
) -> None:
    """argparse counts characters; a CJK character takes two columns. Every help line of
    every command fits an 80-column terminal, and the headings are in the chosen language."""
    from rich.cells import cell_len

    monkeypatch.setenv("COLUMNS", "80")
    text = _help(monkeypatch, capsys, argv=[*args, "--lang", lang, "--help"], command=only)
    too_wide = [line for line in text.splitlines() if cell_len(line) > 80]
    assert not too_wide, too_wide
    english = ("usage:", "options:", "positional arguments:", "show this help message")
    if lang == "zh-TW":
        assert text.startswith("用法：") and "選項" in text
        assert not any(word in text for word in english), text
    else:
        assert text.startswith("usage: ") and "options:" in text


@pytest.mark.parametrize("command", ["history", "report"])
@pytest.mark.parametrize(
    "option", ["--base-url=http://127.0.0.1:1", "--ca-bundle=x.pem", "--insecure"]
)
def test_history_and_report_take_no_server_options(
    capsys: pytest.CaptureFixture[str], command: str, option: str
) -> None:
    from ollamakit import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, option])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    # Given before the command name, where the top-level parser knows it: a clear message.
    assert cli.main([option, command]) == 2
    err = capsys.readouterr().err
    assert option.split("=")[0] in err and "does not apply" in err
    help_text = _help(pytest.MonkeyPatch(), capsys, argv=[command, "--help"])
    assert "--base-url" not in help_text and "--insecure" not in help_text
    assert "--env-file" in help_text and "--lang" in help_text
