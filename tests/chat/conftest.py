"""Fixtures for the chat tests: a simulator with scripted models, and the real program in a pty.

``chat_sim`` runs the simulator in a thread of the test process (real HTTP on 127.0.0.1), so a
test can read its request log. Its models are fast, except where slowness is the point:

======== ======================================================================
fast:1b  replies :data:`FAST_REPLY` at 400 tok/s
slow:1b  :data:`SLOW_REPLY` (26 words) at 20 tok/s: long enough to watch or interrupt
think:1b a thinking model (thinking text first, then the answer)
other:1b a second fast model for ``/model``
broken:1b fails after 3 chunks with an ``{"error": ...}`` line
stall:1b sends 2 chunks, then nothing (the connection stays open)
======== ======================================================================

``spawn_chat`` starts ``python -m ollamakit chat`` in a pseudo-terminal (pexpect), 100x40,
with prompt_toolkit's cursor-position requests off (nothing answers them in a pty).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from ollamakit.chat.transcript import read_events
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, count_tokens, run_in_thread

FAST_REPLY = "The answer is forty-two, as usual."
SLOW_REPLY = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
)


def _fixed(name: str, reply: str, **kwargs: Any) -> ModelSpec:
    return ModelSpec(
        name, reply=reply, reply_tokens=count_tokens(reply), load_ms=5, warm_load_ms=1, **kwargs
    )


def chat_config() -> SimConfig:
    return SimConfig(
        models=(
            _fixed("fast:1b", FAST_REPLY, eval_tps=400),
            _fixed("slow:1b", SLOW_REPLY, eval_tps=20),
            ModelSpec(
                "think:1b",
                thinking=True,
                thinking_tokens=12,
                reply_tokens=12,
                eval_tps=400,
                load_ms=5,
            ),
            _fixed("other:1b", "Other model here.", eval_tps=400, parameter_size="1.0B"),
            _fixed(
                "broken:1b",
                "This reply will break soon, sorry.",
                eval_tps=400,
                faults=(Fault(FaultKind.ERROR_AFTER, 3),),
            ),
            _fixed(
                "stall:1b",
                "Hello, I will now stop talking forever.",
                eval_tps=400,
                faults=(Fault(FaultKind.STALL_AFTER, 2),),
            ),
        ),
        stall_s=30,
    )


@pytest.fixture
def chat_sim() -> Iterator[Any]:
    with run_in_thread(chat_config()) as sim:
        yield sim


def chat_requests(sim: Any) -> list[Any]:
    return [r for r in sim.requests() if r.path == "/api/chat"]


def spawn_chat(url: str, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    full_env = {
        **os.environ,
        "PROMPT_TOOLKIT_NO_CPR": "1",
        "TERM": "xterm-256color",
        **(env or {}),
    }
    return pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", "chat", "--base-url", url, *args],
        env=full_env,
        encoding="utf-8",
        dimensions=(40, 100),
        timeout=20,
    )


class Chat:
    """A driven chat session: send lines, wait for replies, leave."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child

    def prompt(self) -> None:
        self.child.expect_exact(">>> ")

    def send(self, text: str) -> None:
        """Type a line and press Enter (prompt_toolkit reads Enter as CR)."""
        self.child.send(text + "\r")

    def say(self, text: str, expect: str) -> None:
        """Send a message and wait for the reply text, then for its stats line and a prompt."""
        self.send(text)
        self.child.expect_exact(expect)
        self.child.expect_exact("first token")
        self.prompt()

    def bye(self) -> int:
        self.send("/bye")
        self.child.expect(pexpect.EOF)
        self.child.close()
        status: int = self.child.exitstatus
        return status


@pytest.fixture
def start_chat(chat_sim: Any) -> Iterator[Any]:
    children: list[pexpect.spawn] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Chat:
        child = spawn_chat(chat_sim.url, *args, env=env)
        children.append(child)
        chat = Chat(child)
        chat.prompt()
        return chat

    yield start
    for child in children:
        if child.isalive():
            child.terminate(force=True)


def transcripts(home: Path) -> list[Path]:
    return sorted((home / "transcripts").glob("*.jsonl"))


def only_transcript(home: Path) -> list[dict[str, Any]]:
    files = transcripts(home)
    assert len(files) == 1, files
    return read_events(files[0])
