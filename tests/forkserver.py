"""Start the real program in a fresh process without paying the interpreter's start-up each time.

``tests.support.run_program`` runs ``python -m ollamakit ARGS`` (or a root script) as a user
does: its own process, its own stdin/stdout/stderr pipes (no terminal), environment and working
directory, and its exit status. Most of what such a process costs is importing rich, httpx and
the standard library (~0.7 s of CPU each, ~200 times a run). So each pytest(-xdist) worker starts
one *fork server* (this file, ``python -m tests.forkserver``): a single-threaded process that
imports those modules, then waits. For each command it forks;
the child takes the pipes (passed with ``SCM_RIGHTS``), the environment and the directory, resets
signals, the random seed and the locale, and runs ``ollamakit`` with :mod:`runpy` exactly as
``python -m`` would, ending the way any interpreter ends (``SystemExit``, atexit, flush).

ollamakit's command modules are preloaded too (``OWN``): nothing in ollamakit reads the
environment, the arguments or the locale at import time (a test keeps it so), so a child that
inherits them behaves as a fresh start; each command still reads its settings, language and
``.env`` from the child's own environment and directory.

When a command needs something a fork cannot give (different ``PYTHON*`` variables, which act
at interpreter start-up), or ``TESTS_NO_FORKSERVER=1`` is set, ``run_program`` falls back to a
plain subprocess. Protocol (one Unix-socket connection per command): the client sends one JSON
line (argv, env, cwd) with three file descriptors (stdin, stdout, stderr); the server answers
``{"pid": N}`` and, once the child has exited, ``{"status": waitstatus, "cpu_s": seconds}`` (the
child's CPU time, summed in ``tests.support.CHILD_CPU_S`` to find the costly tests).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import socket
import sys
from typing import Any

#: Imported once by the server. Nothing from ``ollamakit``; nothing that patches another module.
_PRELOAD_NAMES = (
    "argparse asyncio base64 concurrent.futures contextlib dataclasses datetime decimal difflib "
    "email.message email.utils gettext hashlib html http.client http.cookiejar ipaddress json "
    "locale logging mimetypes pathlib platform random shlex shutil signal socket sqlite3 ssl "
    "statistics string subprocess tempfile textwrap threading tomllib traceback typing "
    "unicodedata urllib.parse urllib.request uuid zlib "
    "anyio certifi h11 httpcore httpx idna msgspec orjson platformdirs sniffio yaml "
    "markdown_it pygments rich rich.console rich.live rich.markdown rich.markup rich.panel "
    "rich.progress rich.rule rich.syntax rich.table rich.text rich.theme "
    "prompt_toolkit wcwidth"
)
#: ollamakit's own command modules, preloaded after the libraries. Safe because no ollamakit
#: module reads the environment, the arguments or the locale at import time (everything is read
#: in ``cli.main`` and ``config.load_settings``; ``tests/test_forkserver.py`` keeps it so), and
#: saves ~0.35 s of CPU per command (several hundred commands a run).
OWN = (
    "ollamakit.cli",
    "ollamakit.bench.cli",
    "ollamakit.chat.cli",
    "ollamakit.doctor",
    "ollamakit.load.cli",
    "ollamakit.report.cli",
    "ollamakit.report.history_cli",
    "ollamakit.sim.cli",
    "ollamakit.sim.app",
)
PRELOAD = tuple(_PRELOAD_NAMES.split())


def _recv_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data = b""
    fds: list[int] = []
    while not data.endswith(b"\n"):
        piece, more_fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 8)
        if not piece:
            raise EOFError("client went away")
        data += piece
        fds += more_fds
    return json.loads(data), fds


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: take the request's stdio, environment and directory."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.closerange(3, 65536)  # the listening socket, the connection, the passed originals
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    import locale
    import random
    import signal

    random.seed()  # else every child would draw the server's sequence (run ids, jitter ...)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets it at start-up
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    encoding = os.environ.get("PYTHONIOENCODING", "").split(":")[0] or None
    if encoding is None:
        preferred = locale.getpreferredencoding(False)
        ascii_like = preferred.lower() in ("ascii", "ansi_x3.4-1968", "646")
        encoding = "utf-8" if sys.flags.utf8_mode or ascii_like else preferred
    sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding=encoding, errors="backslashreplace", buffering=1, closefd=False
    )
    sys.argv = list(request["argv"])
    # What ``python -m`` / ``python script.py`` put first on sys.path.
    script = request["script"]
    sys.path[0] = os.path.dirname(os.path.abspath(script)) if script else os.getcwd()


def serve(address: str) -> dict[str, Any]:
    """Answer requests until stdin closes; returns only in a forked child (its request)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(16)
    print("ready", flush=True)
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    while True:
        readable, _, _ = select.select([listener, sys.stdin, *waiting], [], [])
        for ready in readable:
            if ready is sys.stdin:
                if not sys.stdin.readline():  # the worker is gone: so are we
                    sys.exit(0)
            elif ready is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _recv_request(conn)
                except (EOFError, OSError, ValueError):
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    _become(request, fds)
                    return request
                for fd in fds:
                    os.close(fd)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                waiting[os.pidfd_open(pid)] = (pid, conn)
            else:
                pidfd = ready
                pid, conn = waiting.pop(pidfd)
                os.close(pidfd)
                _, status, usage = os.wait4(pid, 0)
                cpu_s = usage.ru_utime + usage.ru_stime
                with contextlib.suppress(OSError):
                    answer = {"status": status, "cpu_s": cpu_s}
                    conn.sendall(json.dumps(answer).encode() + b"\n")
                conn.close()


def main() -> None:
    for name in (*PRELOAD, *OWN):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    # The message catalogues (package data, both languages): parsed once here, not per command.
    with contextlib.suppress(ImportError):
        from ollamakit import i18n

        for domain in i18n.domains():
            i18n.catalogue(domain)
    # What is preloaded lives as long as every child: out of the collector's sight, so a child's
    # collections neither walk it nor touch (and so copy) its pages (the gc.freeze() docs).
    gc.freeze()
    request = serve(sys.argv[1])
    # From here on this process is the program, as if started with ``python -m ollamakit``.
    import runpy

    if request["script"]:
        runpy.run_path(request["script"], run_name="__main__")
    else:
        runpy.run_module("ollamakit", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
