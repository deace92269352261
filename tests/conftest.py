"""Shared fixtures: every test runs with a clean environment and its own data directory.

``isolated_env`` (autouse) removes every variable the tools read (``OLLAMA_*``,
``OLLAMAKIT_*``, the timeouts, proxy variables), points ``OLLAMAKIT_HOME`` at a temporary
directory, switches to an empty working directory (so a developer's ``./.env`` can never leak
into a test) and forces English. ``run_cli`` runs the real program in a subprocess, the way a
user does, and returns what it printed.

Shared by every directory (a directory's own conftest may add to them, never copy them):

* ``ca`` — one private CA (``trustme.CA()``, issuer ``O=trustme ...``) per session, that is per
  pytest-xdist worker; ``ca_file`` writes its certificate to a PEM file for ``--ca-bundle``.
  Certificates for servers come from ``tests.proxyish.server_tls_context(ca, *names)``.
* ``start_sim`` — ``start_sim(config=None, **run_in_thread_kwargs) -> ThreadedSim``: simulators
  in a thread of the test process, on 127.0.0.1 port 0, all stopped after the test.

The suite runs in parallel (pytest-xdist, ``addopts`` in pyproject.toml), so nothing here is
shared between workers: data directories are per test, ports are bound to 0 (or come from
``tests.support.unused_port``), session fixtures are per worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ollamakit.i18n import set_language
from ollamakit.sim import SimConfig, ThreadedSim, run_in_thread
from tests.support import CLIResult, run_program

# Bytecode. With PYTHONDONTWRITEBYTECODE=1 (set on some CI images, and here) every interpreter
# the suite starts (xdist workers, fork servers, pty and subprocess tests, simulators) compiles
# every module from source again: ~0.5 s of CPU each, several hundred times a run. The suite
# keeps its own bytecode under .pytest_cache/pycache (never beside the sources), set here in
# the controller before the workers start, so every process of the run inherits it.
if os.environ.get("PYTHONDONTWRITEBYTECODE"):
    _PYCACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "pycache"
    os.environ.pop("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONPYCACHEPREFIX"] = str(_PYCACHE)
    sys.dont_write_bytecode = False
    sys.pycache_prefix = str(_PYCACHE)

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
    yield home
    set_language("en")


@pytest.fixture
def run_cli() -> type[CLIResult] | object:
    """``run_cli(["doctor", "--base-url", url])`` -> CLIResult (returncode, stdout, stderr)."""
    return run_program


@pytest.fixture(scope="session")
def ca() -> Any:
    """One ``trustme.CA`` for the whole session (making one costs a key generation)."""
    trustme = pytest.importorskip("trustme")
    return trustme.CA()


@pytest.fixture
def ca_file(ca: Any, tmp_path: Path) -> Path:
    """The session CA's certificate as a PEM file (what ``--ca-bundle`` takes)."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def start_sim() -> Iterator[Callable[..., ThreadedSim]]:
    """``start_sim(config=None, **kwargs) -> ThreadedSim``; every one is stopped after the test."""
    started: list[ThreadedSim] = []

    def start(config: SimConfig | None = None, **kwargs: Any) -> ThreadedSim:
        sim = run_in_thread(config, **kwargs)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per CPU on a small machine, one per CPU on a large one.

    Many tests spend most of their time waiting (a deadline running out, a scripted
    reply being paced, a program in a terminal): a second worker per CPU fills that time
    with another test's work. Beyond 8 CPUs one per CPU is plenty.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpus = cpus or 1
    return cpus * 2 if cpus <= 4 else min(cpus, 16)
