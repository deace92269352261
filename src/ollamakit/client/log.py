"""The request log: with ``--debug``, one line per request on the ``ollamakit.http`` logger.

Method, URL (which never holds credentials: they travel as a header, and headers are not
logged), status and time. A stream gets two lines: when its headers came, and when it closed.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("ollamakit.http")


def ms_since(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


def log_answer(method: str, url: str, status: int, start_ns: int) -> None:
    log.debug("%s %s -> %d (%.1f ms)", method, url, status, ms_since(start_ns))


def log_no_answer(method: str, url: str, exc: BaseException, start_ns: int) -> None:
    log.debug(
        "%s %s -> no answer after %.1f ms: %s: %s",
        method,
        url,
        ms_since(start_ns),
        type(exc).__name__,
        exc,
    )


def log_stream_end(method: str, url: str, complete: bool, count: int, start_ns: int) -> None:
    log.debug(
        "%s %s: stream %s, %d chunks in %.1f ms",
        method,
        url,
        "complete" if complete else "closed early",
        count,
        ms_since(start_ns),
    )
