"""Shared fixtures: every test runs with a clean environment and its own data directory.

``isolated_env`` (autouse) removes every variable the tools read (``OLLAMA_*``,
``OLLAMAKIT_*``, the timeouts, proxy variables), points ``OLLAMAKIT_HOME`` at a temporary
directory, switches to an empty working directory (so a developer's ``./.env`` can never leak
into a test) and forces English. ``run_cli`` runs the real program in a subprocess, the way a
user does, and returns what it printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollamakit import console
from ollamakit.i18n import set_language
from tests.support import CLIResult, run_program

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


@pytest.fixture
def run_cli() -> type[CLIResult] | object:
    """``run_cli(["doctor", "--base-url", url])`` -> CLIResult (returncode, stdout, stderr)."""
    return run_program
