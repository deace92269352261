"""The request log: what every request asked for and when, on the server's own clock.

Timestamps are ``time.perf_counter_ns()``. On Linux that is ``CLOCK_MONOTONIC``, shared by all
processes on the machine, so a benchmark client can subtract its own ``perf_counter_ns()``
readings from the simulator's and split latency into client, network/proxy and server parts.

The log is written by the event-loop thread and read from others (``run_in_thread``), so
appends and snapshots take a lock; a record's fields are updated in place while its response
is being written and a snapshot copies them.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class RequestRecord:
    """One request as the simulator saw and answered it."""

    id: int
    method: str
    path: str
    received_ns: int  # the whole request had arrived
    host: str = ""
    authorization: bool = False  # an Authorization header was present (its value is not kept)
    origin: str | None = None
    user_agent: str | None = None
    peer: str = ""
    body: Any = None  # parsed JSON body, or None
    model: str | None = None
    stream: bool | None = None
    status: int | None = None
    headers_sent_ns: int | None = None  # the status line left (with the first chunk, if a stream)
    first_chunk_ns: int | None = None
    last_chunk_ns: int | None = None
    finished_ns: int | None = None
    chunks: int = 0  # NDJSON lines written, including the final done or error line
    cold_load: bool | None = None
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: str | None = None  # an error sent to the client, or what happened to the connection
    outcome: str = "pending"  # ok, error, cut, stall, client_closed, server_stopped
    bytes_sent: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def ttft_ns(self) -> int | None:
        """Server-side time to first chunk: from arrival to the first chunk leaving."""
        if self.first_chunk_ns is None:
            return None
        return self.first_chunk_ns - self.received_ns


class RequestLog:
    """A bounded, thread-safe list of :class:`RequestRecord`."""

    def __init__(
        self, limit: int = 10_000, on_finish: Callable[[RequestRecord], None] | None = None
    ) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=max(1, limit))
        self._lock = threading.Lock()
        self._next_id = 1
        self.on_finish = on_finish

    def begin(self, method: str, path: str, received_ns: int) -> RequestRecord:
        with self._lock:
            record = RequestRecord(
                id=self._next_id, method=method, path=path, received_ns=received_ns
            )
            self._next_id += 1
            self._records.append(record)
        return record

    def finish(self, record: RequestRecord) -> None:
        if self.on_finish is not None:
            self.on_finish(record)

    def snapshot(self, since: int = 0) -> list[RequestRecord]:
        """Copies of the records with ``id > since``, oldest first."""
        with self._lock:
            return [copy.copy(r) for r in self._records if r.id > since]

    def clear(self) -> int:
        with self._lock:
            count = len(self._records)
            self._records.clear()
            return count
