"""The real-engine harness: find the built llama-server and model, run one on loopback.

See ``conftest.py`` for how the tier is run and why the build happens outside pytest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: A template whose generation prompt opens a <think> block (see the file's header).
THINKING_TEMPLATE = HERE / "data" / "qwq-thinking.jinja"
BUILD_SCRIPT = HERE / "build_engine.sh"
ALIAS = "smollm2-135m"
START_TIMEOUT_S = 90.0
CONTEXT_TOKENS = 4096

# Read at import time: the autouse ``isolated_env`` fixture clears every OLLAMAKIT_* variable
# before each test.
_SERVER_ENV = os.environ.get("OLLAMAKIT_ENGINE_SERVER", "")
_MODEL_ENV = os.environ.get("OLLAMAKIT_ENGINE_MODEL", "")
_CACHE_ENV = os.environ.get("OLLAMAKIT_ENGINE_CACHE", "")


@dataclass(frozen=True)
class EngineFiles:
    server: Path
    model: Path


def locate_engine() -> EngineFiles | None:
    """The built server and the model: from run_tier.sh's variables, else the cache, else None."""
    if _SERVER_ENV and _MODEL_ENV:
        return EngineFiles(Path(_SERVER_ENV), Path(_MODEL_ENV))
    env = {**os.environ}
    if _CACHE_ENV:
        env["OLLAMAKIT_ENGINE_CACHE"] = _CACHE_ENV
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--cached-only"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if proc.returncode != 0:
        return None
    found = dict(
        line.split("=", 1)
        for line in proc.stdout.splitlines()
        if line.startswith(("server=", "model="))
    )
    if "server" not in found or "model" not in found:
        return None
    return EngineFiles(Path(found["server"]), Path(found["model"]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Engine:
    """One running llama-server on 127.0.0.1."""

    files: EngineFiles
    port: int
    log_path: Path
    threads: int = 1
    alias: str = ALIAS
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """``host:port``, for an nginx upstream."""
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.files.server),
            "-m",
            str(self.files.model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "-c",
            str(CONTEXT_TOKENS),
            "-np",
            "1",
            "-t",
            str(self.threads),
            "--alias",
            self.alias,
            "--metrics",
            *self.extra_args,
        ]

    def start(self) -> Engine:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"llama-server exited with status {self.proc.returncode}\n{self.log_tail()}"
                )
            if self.healthy():
                return self
            time.sleep(0.1)  # polling a start-up, not timing anything
        self.stop()
        raise RuntimeError(
            f"llama-server not healthy within {START_TIMEOUT_S} s\n{self.log_tail()}"
        )

    def healthy(self) -> bool:
        """``GET /health`` answers 200 (503 while the model loads)."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
