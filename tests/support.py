"""Helpers for tests, shared by every directory (fixtures live in ``tests/conftest.py``).

* :func:`run_program` runs the real program the way a user does; :func:`assert_no_traceback`.
* :func:`settings_for` builds ``Settings`` from flags and an explicit environment.
* :func:`faulty` makes a simulator model with scripted faults.
* :func:`closed_port` and :func:`unused_port`: loopback ports that are safe when tests run in
  parallel (pytest-xdist workers, or several checkouts on one machine).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import locale
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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
    """Run ``python -m ollamakit ARGS`` (or a root script) in its own process, no terminal.

    The process is forked from this worker's fork server (``tests/forkserver.py``: the same
    start as ``python -m``, without re-importing the libraries every time) or, when the fork
    server cannot give what is asked (other ``PYTHON*`` variables, ``TESTS_NO_FORKSERVER=1``),
    started with :mod:`subprocess`. Either way: its own pipes, environment, directory and exit
    status; output decoded as ``subprocess.run(text=True)`` does.
    """
    full_env = {**os.environ, **(env or {})}
    script_path = str(REPO / script) if script else None
    server = _fork_server(full_env)
    if server is not None:
        return server.run(list(args), full_env, input or "", timeout, script_path)
    cmd = [sys.executable, script_path] if script_path else [sys.executable, "-m", "ollamakit"]
    proc = subprocess.run(
        [*cmd, *args],
        env=full_env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CLIResult(proc.returncode, proc.stdout, proc.stderr)


def _python_vars(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith("PYTHON")}


#: CPU seconds used by the programs run through the fork server in this process (a list so that
#: a plugin or a test can read the running total).
CHILD_CPU_S = [0.0]


class _ForkServer:
    """The client of ``tests/forkserver.py``: one server per process (per xdist worker)."""

    def __init__(self) -> None:
        self.folder = tempfile.mkdtemp(prefix="ollamakit-fork-")
        self.address = os.path.join(self.folder, "socket")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "OLLAMAKIT_"))}
        self.python_vars = _python_vars(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.forkserver", self.address],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,  # closed when this process ends: the server then exits
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("the fork server did not start")
        atexit.register(self.close)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.folder, ignore_errors=True)

    def run(
        self, args: list[str], env: dict[str, str], input: str, timeout: float, script: str | None
    ) -> CLIResult:
        encoding = locale.getpreferredencoding(False)
        deadline = time.monotonic() + timeout
        pipes = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr: (read end, write end)
        theirs = [pipes[0][0], pipes[1][1], pipes[2][1]]
        stdin, stdout, stderr = pipes[0][1], pipes[1][0], pipes[2][0]
        request = {"argv": ["-m", *args], "env": env, "cwd": os.getcwd(), "script": script}
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.address)
            socket.send_fds(conn, [json.dumps(request).encode() + b"\n"], theirs)
            for fd in theirs:
                os.close(fd)
            answers = conn.makefile("rb")
            pid = int(json.loads(answers.readline())["pid"])
            out, err = _communicate(stdin, stdout, stderr, input.encode(encoding), deadline, pid)
            conn.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                answer = json.loads(answers.readline())
                status = int(answer["status"])
                CHILD_CPU_S[0] += float(answer.get("cpu_s", 0.0))
            except (TimeoutError, socket.timeout):
                _kill(pid)
                raise subprocess.TimeoutExpired(["ollamakit", *args], timeout) from None
        finally:
            conn.close()
        return CLIResult(
            os.waitstatus_to_exitcode(status), _text(out, encoding), _text(err, encoding)
        )


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _text(data: bytes, encoding: str) -> str:
    # What subprocess.run(text=True) does: decode, then universal newlines.
    return data.decode(encoding).replace("\r\n", "\n").replace("\r", "\n")


def _communicate(
    stdin: int, stdout: int, stderr: int, data: bytes, deadline: float, pid: int
) -> tuple[bytes, bytes]:
    """Write ``data`` to stdin and read stdout and stderr to their ends, by ``deadline``."""
    chunks: dict[int, list[bytes]] = {stdout: [], stderr: []}
    with selectors.DefaultSelector() as selector:
        if data:
            os.set_blocking(stdin, False)
            selector.register(stdin, selectors.EVENT_WRITE)
        else:
            os.close(stdin)
        selector.register(stdout, selectors.EVENT_READ)
        selector.register(stderr, selectors.EVENT_READ)
        view = memoryview(data)
        try:
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _kill(pid)
                    raise subprocess.TimeoutExpired(["ollamakit"], 0)
                for key, _ in selector.select(remaining):
                    fd = int(key.fd)
                    if fd == stdin:
                        try:
                            view = view[os.write(stdin, view[:65536]) :]
                        except BrokenPipeError:
                            view = view[:0]
                        if not view:
                            selector.unregister(stdin)
                            os.close(stdin)
                        continue
                    piece = os.read(fd, 65536)
                    if piece:
                        chunks[fd].append(piece)
                    else:
                        selector.unregister(fd)
                        os.close(fd)
        finally:
            for key in list(selector.get_map().values()):
                os.close(int(key.fd))
    return b"".join(chunks[stdout]), b"".join(chunks[stderr])


_server: _ForkServer | None = None


def _fork_server(env: Mapping[str, str]) -> _ForkServer | None:
    """This process's fork server (started on first use), or None where it cannot serve."""
    global _server
    if os.environ.get("TESTS_NO_FORKSERVER") or not hasattr(os, "fork"):
        return None
    if _server is None:
        _server = _ForkServer()
    if _python_vars(env) != _server.python_vars:
        return None  # PYTHON* variables act when an interpreter starts: a real start
    return _server


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
