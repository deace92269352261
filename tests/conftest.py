"""Shared fixtures: every test runs with a clean environment and its own data directory.

``isolated_env`` (autouse) removes every variable the tools read (``OLLAMA_*``,
``OLLAMAKIT_*``, the timeouts, proxy variables), points ``OLLAMAKIT_HOME`` at a temporary
directory, switches to an empty working directory (so a developer's ``./.env`` can never leak
into a test) and forces English. ``run_cli`` runs the real program in a subprocess, the way a
user does, and returns what it printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from ollamakit import console
from ollamakit.i18n import set_language

REPO = Path(__file__).resolve().parents[1]

_CLEARED_PREFIXES = ("OLLAMA_", "OLLAMAKIT_")
_CLEARED = {
    "GREETING_TIMEOUT_SECONDS",
    "BENCHMARK_TIMEOUT_SECONDS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "LC_ALL",
    "LC_MESSAGES",
    "NO_COLOR",
    "FORCE_COLOR",
}


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "ollamakit-home"
    monkeypatch.setenv("OLLAMAKIT_HOME", str(home))
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    monkeypatch.setenv("NO_PROXY", "*")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    set_language("en")
    console.reset_consoles()
    yield home
    set_language("en")


@dataclass
class CLIResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_program(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    script: str | None = None,
) -> CLIResult:
    """Run ``python -m ollamakit ARGS`` (or a root script) in a subprocess, no terminal."""
    cmd = [sys.executable, str(REPO / script)] if script else [sys.executable, "-m", "ollamakit"]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [*cmd, *args],
        env=full_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def run_cli() -> type[CLIResult] | object:
    """``run_cli(["doctor", "--base-url", url])`` -> CLIResult (returncode, stdout, stderr)."""
    return run_program


def assert_no_traceback(result: CLIResult) -> None:
    assert "Traceback (most recent call last)" not in result.output, result.output
