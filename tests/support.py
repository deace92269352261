"""Helpers for tests, shared by every directory (fixtures live in ``tests/conftest.py``).

* :func:`run_program` runs the real program the way a user does; :func:`assert_no_traceback`.
* :func:`settings_for` builds ``Settings`` from flags and an explicit environment.
* :func:`faulty` makes a simulator model with scripted faults.
* :func:`closed_port` and :func:`unused_port`: loopback ports that are safe when tests run in
  parallel (pytest-xdist workers, or several checkouts on one machine).
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ollamakit.config import Flags, Settings, load_settings
from ollamakit.sim import Fault, FaultKind, ModelSpec

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


# --------------------------------------------------------------------------- settings


def settings_for(
    url: str,
    ca: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> Settings:
    """Settings for ``url`` as ``load_settings`` resolves them, from nothing but the arguments.

    ``ca`` is the ``--ca-bundle`` file. Lower-case ``options`` are :class:`Flags` fields
    (``insecure=True``, ``ca_bundle=...``, ``lang="zh-TW"``); upper-case ones are environment
    variables (``OLLAMA_API_KEY="k"``), merged over ``environ``. The process environment is
    never read, so a test sees only what it passes::

        settings_for(url, ca_bundle=str(ca_file))
        settings_for(url, environ={"OLLAMA_API_KEY": "k"})
        settings_for(url, pki.ca_pem, OLLAMA_API_KEY="k")
    """
    env = dict(environ or {})
    flags: dict[str, Any] = {}
    for name, value in options.items():
        if name.isupper():
            env[name] = value
        else:
            flags[name] = value
    if ca is not None:
        flags["ca_bundle"] = os.fspath(ca)
    return load_settings(Flags(base_url=url, **flags), environ=env)


# --------------------------------------------------------------------------- simulator models

#: What :func:`faulty` starts from: quick loads, a short reply at 1000 tokens/s.
FAULTY_BASE = ModelSpec(
    "faulty:1b", load_ms=5, warm_load_ms=0, prompt_tps=50_000, eval_tps=1_000, reply_tokens=10
)


def faulty(
    name: str,
    *faults: Fault | FaultKind | int,
    base: ModelSpec | None = None,
    **spec: Any,
) -> ModelSpec:
    """A model that misbehaves: ``base`` (default :data:`FAULTY_BASE`) renamed, with ``faults``.

    A fault is a :class:`Fault`, or a :class:`FaultKind` optionally followed by its ``arg``;
    ``spec`` overrides other model fields::

        faulty("err:1b", Fault(FaultKind.ERROR_AFTER, 3))
        faulty("err:1b", FaultKind.ERROR_AFTER, 3)      # the same
        faulty("busy:1b", FaultKind.BUSY, base=FAST, reply_tokens=4)
    """
    parsed: list[Fault] = []
    for item in faults:
        if isinstance(item, Fault):
            parsed.append(item)
        elif isinstance(item, FaultKind):
            parsed.append(Fault(item))
        elif parsed and parsed[-1].arg == 0 and not isinstance(item, bool):
            parsed[-1] = dataclasses.replace(parsed[-1], arg=int(item))
        else:
            raise TypeError(f"faulty(): {item!r} must follow a FaultKind")
    return dataclasses.replace(base or FAULTY_BASE, name=name, faults=tuple(parsed), **spec)


# --------------------------------------------------------------------------- ports
#
# Servers that accept a socket or port 0 (the simulator, CannedServer) never need these: they
# bind port 0 and report what they got. These are for the other two cases, race-free under
# pytest-xdist (several workers) and with several checkouts running the suite on one machine.

_held: list[socket.socket] = []  # closed_port() sockets, bound for the life of the process


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port that refuses connections, and keeps refusing them.

    The port stays *bound* (never listening) until the process ends, so no other test, worker
    or program can start listening on it in the meantime: connecting to it is refused, always.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    _held.append(sock)
    return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


class _PortBlock:
    """This worker's share of the ports below the kernel's ephemeral range."""

    def __init__(self) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
        index = int(worker) if worker.isdigit() else 0
        low, high = 15_000, max(_ephemeral_low(), 16_000)
        size = max((high - low) // max(count, 1), 50)
        self.low = low + (index % max(count, 1)) * size
        self.size = size
        # A random start: another run of the suite on this machine uses the same blocks.
        self.cursor = random.randrange(size)

    def take(self) -> int:
        for _ in range(self.size):
            port = self.low + self.cursor % self.size
            self.cursor += 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
        raise RuntimeError(f"no free port in {self.low}-{self.low + self.size - 1}")


_block: _PortBlock | None = None


def unused_port() -> int:
    """A loopback port number for a server that must be *told* its port (nginx).

    Taken from a block of ports owned by this pytest-xdist worker and below the kernel's
    ephemeral range, so neither another worker nor the kernel (port-0 binds, outgoing
    connections) hands the same number out meanwhile. Another program may still take it
    between this check and the server's own bind: the caller retries on "Address already in
    use" (``tests/deploy/conftest.py`` does).
    """
    global _block
    if _block is None:
        _block = _PortBlock()
    return _block.take()
