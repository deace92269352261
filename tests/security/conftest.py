"""Fixtures for the security and data-safety tests: simulators, read-only and tiny disks.

``readonly_dir`` and ``tiny_disk`` need real file-system behaviour: as root, permission bits
do not stop a write, so they mount a tmpfs (read-only, or a few kilobytes large) when the
test runs as root, and skip when that is not possible. As another user, ``readonly_dir`` is a
``0500`` folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ollamakit.sim import ModelSpec, SimConfig, ThreadedSim, run_in_thread

#: Quick models: each request takes a few milliseconds, a run of a few dozen well under 5 s.
QUICK = ModelSpec(
    "quick:1b", load_ms=5, warm_load_ms=0, prompt_tps=50_000, eval_tps=2_000, reply_tokens=8
)
#: Slow enough that a benchmark is still running when the test sends it a signal.
SLOW = ModelSpec(
    "slow:1b", load_ms=5, warm_load_ms=0, prompt_tps=50_000, eval_tps=40, reply_tokens=20
)

SUITE_TOML = """name = "tiny"
num_predict = 16
[[prompts]]
id = "hi"
category = "greeting"
prompt = "Hello there"
[[prompts]]
id = "two"
category = "greeting"
prompt = "Say two words"
"""


@pytest.fixture
def start_sim() -> Iterator[Callable[..., ThreadedSim]]:
    started: list[ThreadedSim] = []

    def start(*models: ModelSpec, **kwargs: object) -> ThreadedSim:
        server = run_in_thread(SimConfig(models=models or (QUICK,), **kwargs))  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE_TOML, encoding="utf-8")
    return path


def _mount(target: Path, options: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written into (a read-only tmpfs as root, else mode 0500)."""
    target = tmp_path / "readonly"
    target.mkdir()
    if os.geteuid() == 0:
        if not _mount(target, "size=64k,mode=0755,ro"):
            pytest.skip("cannot mount a read-only tmpfs here")
        yield target
        _umount(target)
    else:
        target.chmod(0o500)
        yield target
        target.chmod(0o700)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A writable tmpfs of one megabyte, for "disk full" (root only)."""
    target = tmp_path / "tiny"
    target.mkdir()
    if not _mount(target, "size=1m,mode=0700"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield target
    _umount(target)
