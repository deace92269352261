"""The canary: a password and an API key that must appear nowhere.

Every path that handles a secret is driven through the real program — configuration errors
whose value a password broke (a quote, ``' #'``, no host, a raw ``/``), a working run with
credentials (``--debug`` included), an API key with CR/LF — and then every output is
searched: stdout and stderr, the ``--output`` files (json, csv, md, html), ``doctor --json``,
and every byte under ``OLLAMAKIT_HOME`` (the history database with its ``-wal``, transcripts).
The canary is searched as written, percent-encoded, and inside the ``Basic`` header's base64.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from ollamakit.config import load_settings
from ollamakit.errors import ConfigError
from ollamakit.sim import ThreadedSim
from tests.support import CLIResult, run_program

CANARY = "Canary7f3eQ"
USER = "ollama-user"


def _forms(secret: str) -> list[str]:
    forms = {secret, quote(secret, safe=""), CANARY}
    forms.add(base64.b64encode(f"{USER}:{secret}".encode()).decode())
    return sorted(forms)


def _leaks(secret: str, results: list[CLIResult], *folders: Path) -> list[str]:
    found: list[str] = []
    for result in results:
        for form in _forms(secret):
            if form in result.output:
                found.append(f"output contains {form!r}:\n{result.output}")
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path} contains {f!r}" for f in _forms(secret) if f.encode() in data]
    return found


def _everything(
    url_env: dict[str, str], out: Path, suite: Path, *, ok: bool, full: bool = True
) -> list[CLIResult]:
    """Every command, every output format, with and without --debug (``full``; else the
    commands that read the settings, once each: a configuration error stops them all)."""
    outputs: list[str] = []
    for fmt in ("json", "csv", "md", "html"):
        outputs += ["--output", str(out / f"run.{fmt}")]
    bench = ["bench", "--auto", "--runs", "1", "--warmup", "0", "--suite", str(suite), *outputs]
    runs = [
        run_program(["doctor"], env=url_env),
        run_program(["doctor", "--json"], env=url_env),
        run_program(bench, env=url_env),
        run_program(["chat", "--model", "quick:1b"], env=url_env, input="hi\n"),
    ]
    if full:
        runs += [
            run_program(["doctor", "--debug"], env=url_env),
            run_program([*bench, "--debug"], env=url_env),
            run_program(["chat", "--auto"], env=url_env),
            run_program(["history"], env=url_env),
            run_program(["report", "last", "--output", str(out / "again.html")], env=url_env),
        ]
    if ok:
        assert runs[2].returncode == 0, runs[2].output
        assert (out / "run.html").is_file()
    return runs


@pytest.mark.parametrize(
    "line",
    [
        f"OLLAMA_BASE_URL=https://{USER}:Sec #{CANARY}@host.example",
        f"OLLAMA_BASE_URL=https://{USER}:{CANARY} #@host.example",
        f'OLLAMA_BASE_URL="https://{USER}:{CANARY}"x"@host.example"',
        f"OLLAMA_BASE_URL='https://{USER}:{CANARY}'x'@host.example'",
        f'OLLAMA_BASE_URL="https://{USER}:{CANARY}',
        f"OLLAMA_BASE_URL=https://{USER}:{CANARY}",
        f"OLLAMA_BASE_URL=https://{USER}:{CANARY}@",
        f"OLLAMA_BASE_URL=https://{USER}:{CANARY}/x@host.example",
        f"OLLAMA_BASE_URL=http://{USER}:{CANARY}@[::1",
        f"OLLAMA_BASE_URL=http:/{USER}:{CANARY}@host.example",
    ],
)
def test_configuration_errors_never_show_the_password(
    line: str, tmp_path: Path, isolated_env: Path, suite_file: Path
) -> None:
    Path(".env").write_text(line + "\n", encoding="utf-8")
    out = tmp_path / "out"
    results = _everything({}, out, suite_file, ok=False, full=False)
    assert all(r.returncode == 2 for r in results), [r.output for r in results]
    assert '"ConfigError"' in results[1].stdout  # doctor --json reports it as JSON
    assert _leaks(CANARY, results, out, isolated_env) == []


def test_a_working_run_with_credentials_keeps_the_password_everywhere_hidden(
    tmp_path: Path, isolated_env: Path, suite_file: Path, start_sim: Callable[..., ThreadedSim]
) -> None:
    port = start_sim().url.rsplit(":", 1)[1]
    secret = f"p@ss/{CANARY}#1"
    env = {"OLLAMA_BASE_URL": f"http://{USER}:{quote(secret, safe='')}@127.0.0.1:{port}"}
    out = tmp_path / "out"
    results = _everything(env, out, suite_file, ok=True)
    assert list(isolated_env.glob("history.sqlite3*"))
    assert list((isolated_env / "transcripts").glob("*.jsonl"))
    assert _leaks(secret, results, out, isolated_env) == []


def _api_key_is_checked() -> bool:
    """Whether config rejects an API key with CR/LF (added on the client's branch)."""
    try:
        load_settings(environ={"OLLAMA_API_KEY": "sk-a\r\nb"})
    except ConfigError:
        return True
    return False


@pytest.mark.xfail(
    not _api_key_is_checked(),
    reason="needs the API-key CR/LF check in config.py from the client branch",
    strict=True,
)
# A line break at either end is whitespace around the value (a .env file saved with CRLF line
# ends gives "sk-…\r") and is stripped; one inside the key cannot be sent in a header.
@pytest.mark.parametrize("key", [f"sk-{CANARY}\r\nX-Evil: 1", f"sk-{CANARY}\rX"])
def test_an_api_key_with_cr_or_lf_is_rejected_without_showing_it(
    key: str,
    tmp_path: Path,
    isolated_env: Path,
    suite_file: Path,
    start_sim: Callable[..., ThreadedSim],
) -> None:
    env = {"OLLAMA_BASE_URL": start_sim().url, "OLLAMA_API_KEY": key}
    out = tmp_path / "out"
    results = _everything(env, out, suite_file, ok=False, full=False)
    assert all(r.returncode == 2 for r in results), [r.output for r in results]
    assert "OLLAMA_API_KEY" in results[0].stderr
    assert _leaks(key, results, out, isolated_env) == []


def test_the_canary_search_can_fail(tmp_path: Path) -> None:
    """The search itself works: a file or an output holding the canary is found."""
    (tmp_path / "leak.txt").write_bytes(f"x {quote(CANARY)} y".encode())
    assert _leaks("other", [CLIResult(0, "", f"…{CANARY}…")], tmp_path)
    assert len(_leaks("other", [], tmp_path)) == 1
    assert os.path.exists(tmp_path / "leak.txt")
