"""Running the simulator: in an event loop, in a background thread, or as a subprocess.

* :class:`SimServer` — ``await server.start(host, port)`` inside a running loop.
* :func:`run_in_thread` — a context manager for tests in the same process::

      with run_in_thread(config, port=0) as sim:
          ...  # talk to sim.url
          sim.requests()

* :func:`start_subprocess` — ``python -m ollamakit.sim ... --port 0`` in its own process, so a
  benchmark's client and the simulator do not share a GIL; it reads the ``listening on`` line
  to learn the URL. (``python -m ollamakit sim`` runs the same code through the umbrella CLI.)

The listening line, ``listening on http://HOST:PORT``, is a machine interface (scripts read the
port from it), so it is not translated.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ollamakit.sim.app import SimApp
from ollamakit.sim.config import SimConfig
from ollamakit.sim.http import HTTPServer
from ollamakit.sim.log import RequestLog, RequestRecord
from ollamakit.sim.openai import OpenAIRoutes

LISTENING_PREFIX: Final = "listening on "


def format_url(scheme: str, host: str, port: int) -> str:
    """
    >>> format_url("http", "::1", 8080), format_url("https", "127.0.0.1", 443)
    ('http://[::1]:8080', 'https://127.0.0.1:443')
    """
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """One listening socket on the first address ``host`` resolves to (IPv4 or IPv6)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class SimServer:
    """The simulator inside a running asyncio event loop."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.log = RequestLog(self.config.log_limit, on_request)
        self.app: SimApp | None = None
        self._http: HTTPServer | None = None
        self.host = ""
        self.port = 0
        self.scheme = "http"

    @property
    def url(self) -> str:
        return format_url(self.scheme, self.host, self.port)

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 11434,
        *,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> None:
        ssl_context = None
        if tls_cert is not None:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(str(tls_cert), str(tls_key) if tls_key else None)
            ssl_context.set_alpn_protocols(["http/1.1"])
            self.scheme = "https"
        sock = _bind(host, port)
        bound = sock.getsockname()
        self.host, self.port = str(bound[0]), int(bound[1])
        # Ollama's Host check applies when the listener itself is a loopback address.
        self.app = SimApp(self.config, loopback=_is_loopback(self.host), log=self.log)
        self.app.mount(OpenAIRoutes(self.app))
        self._http = HTTPServer(self.app, ssl_context=ssl_context)
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_exception_handler)
        await self._http.start(sock)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    def requests(self, since: int = 0) -> list[RequestRecord]:
        """Copies of the logged requests with ``id > since``."""
        return self.log.snapshot(since)

    def clear_requests(self) -> int:
        return self.log.clear()


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    # Clients that vanish mid-handshake or mid-stream are normal for a test server (and for
    # the faults it injects); anything else is still reported.
    exc = context.get("exception")
    if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError)):
        return
    loop.default_exception_handler(context)


class ThreadedSim:
    """A :class:`SimServer` running on its own event loop in a daemon thread."""

    def __init__(
        self,
        config: SimConfig | None,
        host: str,
        port: int,
        tls_cert: str | Path | None,
        tls_key: str | Path | None,
    ) -> None:
        self.server = SimServer(config)
        self._args = (host, port, tls_cert, tls_key)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ollamakit-sim", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def config(self) -> SimConfig:
        return self.server.config

    def requests(self, since: int = 0) -> list[RequestRecord]:
        return self.server.requests(since)

    def clear_requests(self) -> int:
        return self.server.clear_requests()

    def start(self) -> ThreadedSim:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        host, port, cert, key = self._args
        try:
            loop.run_until_complete(self.server.start(host, port, tls_cert=cert, tls_key=key))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self.server.stop())
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ThreadedSim:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run_in_thread(
    config: SimConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_cert: str | Path | None = None,
    tls_key: str | Path | None = None,
) -> ThreadedSim:
    """Start a simulator in a background thread; use as a context manager (or call ``stop``)."""
    return ThreadedSim(config, host, port, tls_cert, tls_key).start()


class SimProcess:
    """A simulator subprocess; see :func:`start_subprocess`."""

    def __init__(
        self,
        proc: subprocess.Popen[str],
        url: str,
        config_file: str | None,
        pumps: Sequence[threading.Thread] = (),
    ) -> None:
        self.proc = proc
        self.url = url
        self._config_file = config_file
        self._pumps = list(pumps)
        self.output: list[str] = []  # stdout lines after the listening line
        self.errors: list[str] = []  # stderr lines

    @property
    def pid(self) -> int:
        return self.proc.pid

    def requests(self, since: int = 0) -> list[RequestRecord]:
        """The request log, fetched from ``GET /_sim/requests``."""
        items = self._control("GET", f"/_sim/requests?since={since}")
        return [RequestRecord.from_json(item) for item in items]

    def clear_requests(self) -> int:
        return int(self._control("DELETE", "/_sim/requests")["cleared"])

    def _control(self, method: str, path: str) -> Any:
        """The simulator's own control routes, with the standard library: httpx stays the
        client's (``ollamakit.client``), and the certificate of a test TLS listener is not
        what is being checked here."""
        import ssl
        import urllib.request

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(request, timeout=30, context=context) as reply:
            return json.loads(reply.read())

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for pump in self._pumps:  # they end at EOF, once the process is gone
            pump.join(timeout)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self._config_file:
            with contextlib.suppress(OSError):
                os.unlink(self._config_file)
            self._config_file = None
        return int(self.proc.returncode)

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # The child must import this very package, installed or not (e.g. a src/ checkout).
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def start_subprocess(
    args: Sequence[str] = (),
    *,
    config: SimConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    quiet: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 20,
) -> SimProcess:
    """Run ``python -m ollamakit.sim`` with ``args`` and wait for its listening line."""
    config_file = None
    cmd = [sys.executable, "-m", "ollamakit.sim", "--host", host, "--port", str(port)]
    if quiet:
        cmd.append("--quiet")
    if config is not None:
        fd, config_file = tempfile.mkstemp(prefix="ollamakit-sim-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config.to_dict(), fh)
        cmd += ["--config", config_file]
    cmd += list(args)
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env=_child_env(env),
    )
    found: list[str] = []
    ready = threading.Event()
    handle_output: list[str] = []
    errors: list[str] = []

    def pump_stdout() -> None:
        # Keep reading for the life of the process, so a full pipe never blocks the server.
        assert proc.stdout is not None
        for line in proc.stdout:
            if not found and line.startswith(LISTENING_PREFIX):
                found.append(line[len(LISTENING_PREFIX) :].strip())
                ready.set()
            elif len(handle_output) < 10_000:
                handle_output.append(line.rstrip("\n"))
        ready.set()

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if len(errors) < 1000:
                errors.append(line.rstrip("\n"))

    pumps = [
        threading.Thread(target=pump_stdout, daemon=True),
        threading.Thread(target=pump_stderr, daemon=True),
    ]
    for pump in pumps:
        pump.start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.05):
        if time.monotonic() > deadline:
            break
    handle = SimProcess(proc, found[0] if found else "", config_file, pumps)
    handle.output = handle_output
    handle.errors = errors
    if not found:
        handle.stop()
        raise RuntimeError(
            "simulator did not start: " + ("\n".join(errors) or f"exit code {proc.returncode}")
        )
    return handle


@contextlib.contextmanager
def subprocess_sim(args: Sequence[str] = (), **kwargs: Any) -> Iterator[SimProcess]:
    """:func:`start_subprocess` as a context manager."""
    proc = start_subprocess(args, **kwargs)
    try:
        yield proc
    finally:
        proc.stop()
