"""Helpers for tests: run the real program the way a user does, and check what it printed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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


def assert_no_traceback(result: CLIResult) -> None:
    assert "Traceback (most recent call last)" not in result.output, result.output
