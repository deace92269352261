"""The session transcript: JSON Lines under ``OLLAMAKIT_HOME/transcripts/``, written as it goes.

Every event is one line, written and flushed at once, so a crash, a lost connection or a
closed terminal loses nothing that already happened. The REPL writes the user's message
*before* sending it, and the reply (complete, interrupted or failed, with whatever text
arrived) in a ``finally`` block; SIGTERM/SIGHUP are turned into exceptions by the REPL so that
block runs then too.

One line per event, always with ``event`` and ``ts`` (ISO-8601, local time with offset)::

    {"event":"start","ts":..,"format":1,"tool":"ollamakit 0.1.0","server":"http://h:11434",
     "model":"llama3.2:latest","system":null,"options":{},"think":null}
    {"event":"user","ts":..,"content":"Hi"}
    {"event":"reply","ts":..,"model":..,"content":"Hello!","thinking":"","interrupted":false,
     "stats":{"ttft_ms":..,"total_ms":..,"eval_count":..,"eval_tps":.., ...}}
    {"event":"error","ts":..,"model":..,"error":"<message>","kind":"ServerBusy","content":"<partial>"}
    {"event":"model"|"system"|"options"|"think"|"clear"|"retry", "ts":.., ...}
    {"event":"context_cut","ts":..,"cuts":2,"num_ctx":4096}  (the server dropped old messages)
    {"event":"end","ts":..,"replies":..,"failed":..,"interrupted":..}

The server URL is the redacted one; the file is created ``0600`` (conversations are private).
"""

from __future__ import annotations

import json
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

from ollamakit import __version__
from ollamakit.errors import ConfigError
from ollamakit.files import private_dir
from ollamakit.i18n import t

FORMAT_VERSION: Final = 1


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _safe(name: str) -> str:
    """A model name as a file-name part.

    >>> _safe("hf.co/user/Model:Q4_K_M")
    'hf.co_user_Model-Q4_K_M'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace(":", "-"))[:60]


def encode(record: dict[str, Any]) -> bytes:
    """One JSON line, whatever the server sent.

    orjson refuses integers beyond 64 bits (a hostile or broken server's ``eval_count``): the
    line is then written by the standard library, which keeps big integers exactly, so the
    reply is never lost for the sake of a number. Non-finite floats become ``null`` either way.

    >>> encode({"event": "reply", "content": "hi", "stats": {"eval_count": 2**70}})
    b'{"event":"reply","content":"hi","stats":{"eval_count":1180591620717411303424}}'
    >>> encode({"x": float("nan")})
    b'{"x":null}'
    """
    try:
        return orjson.dumps(record)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, an odd type
        return json.dumps(_plain(record), ensure_ascii=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as ``None`` and unknown types as strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


class Transcript:
    """Append-only JSONL writer; use :meth:`create`, then :meth:`write` per event."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle = handle

    @classmethod
    def create(cls, home: Path, model: str, *, when: datetime | None = None) -> Transcript:
        """A new transcript file; a home that cannot hold it is a :class:`ConfigError`."""
        folder = home / "transcripts"
        try:
            return cls._create(folder, model, when)
        except OSError as exc:
            raise ConfigError(
                t("files.transcript_unusable", path=str(folder), error=exc.strerror or exc),
                key="OLLAMAKIT_HOME",
                value=str(home),
                example="~/.local/share/ollamakit",
            ) from None

    @classmethod
    def _create(cls, folder: Path, model: str, when: datetime | None) -> Transcript:
        private_dir(folder)
        stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = f"chat-{stamp}-{_safe(model)}"
        for n in range(1, 1000):
            path = folder / (f"{base}.jsonl" if n == 1 else f"{base}-{n}.jsonl")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            os.fchmod(fd, 0o600)  # the umask cannot loosen it, but be explicit
            return cls(path, os.fdopen(fd, "ab", buffering=0))
        raise FileExistsError(17, os.strerror(17), str(folder / f"{base}.jsonl"))

    def write(self, event: str, **fields: Any) -> None:
        """One event, one line, on disk before this returns (unbuffered write)."""
        if self._handle.closed:
            return
        record = {"event": event, "ts": _now(), **fields}
        self._handle.write(encode(record) + b"\n")

    def start(
        self, *, server: str, model: str, system: str | None, options: Any, think: Any
    ) -> None:
        self.write(
            "start",
            format=FORMAT_VERSION,
            tool=f"ollamakit {__version__}",
            server=server,
            model=model,
            system=system,
            options=options,
            think=think,
        )

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of a transcript file (for tests and tools)."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
