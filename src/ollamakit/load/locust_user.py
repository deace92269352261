"""A Locust user for Ollama, and the hooks that merge every worker's results (locustfile).

Locust (https://locust.io) is the distributed load engine: one master, any number of
workers on other machines, each running many users as gevent greenlets. This module is a
locustfile; ``ollamakit load --locust-master`` / ``--locust-worker HOST`` run it for you, or
run it yourself::

    locust -f "$(python -c 'import ollamakit.load.locust_user as m; print(m.__file__)')" \\
        --master --headless --expect-workers 2 -u 8 -r 8 -t 60s
    OLLAMA_BASE_URL=https://user:pw@gpu.example.com OLLAMAKIT_LOCUST_MODEL=llama3.2 \\
        locust -f .../locust_user.py --worker --master-host MASTER

Locust is imported here only (the optional extra ``ollamakit[locust]``).

The user
    :class:`OllamaUser` sends one streamed ``/api/chat`` request per task with ollamakit's
    synchronous client (gevent patches its sockets) and measures it with the same code as
    ``ollamakit load`` (:func:`ollamakit.load.driver.measure_sync`). Each request fires a
    Locust request event (``request_type="chat"``, ``name`` = the model, ``response_time`` =
    end-to-end ms, ``response_length`` = generated tokens, the error as ``exception``), plus
    ``METRIC`` events ``ttft`` / ``tpot`` / ``itl_p95`` with those times in ms, so Locust's own
    statistics and UI show TTFT and inter-token latency too.

Merging
    Every measured request is also kept as a row (the Outcome's fields, wall-clock send and end
    times in ns, the worker's client id). Workers attach their new rows to each stats report
    (``report_to_master``; the last report is sent when they stop); the master collects them
    (``worker_report``) and, when it quits, writes them all to ``OLLAMAKIT_LOCUST_OUT`` (JSON),
    which ``ollamakit load --locust-master`` turns into one run in the history and reports.

Levels
    With ``OLLAMAKIT_LOCUST_LEVELS=1,2,4`` and ``OLLAMAKIT_LOCUST_DURATION`` the master steps
    through the user counts (:class:`LevelShape`, a Locust ``LoadTestShape``); the level of a
    row is decided on the master from its send time.

Settings (environment): ``OLLAMA_BASE_URL`` and the usual ollamakit variables (read by
:func:`ollamakit.config.load_settings`, so credentials never travel through Locust),
``OLLAMAKIT_LOCUST_MODEL``, ``OLLAMAKIT_LOCUST_DATASET``, ``OLLAMAKIT_LOCUST_NUM_PREDICT``,
``OLLAMAKIT_LOCUST_SEED``, ``OLLAMAKIT_LOCUST_THINK``.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, ClassVar

import orjson
from locust import LoadTestShape, User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from ollamakit.client import OllamaClient
from ollamakit.config import Flags, load_settings
from ollamakit.load.dataset import Item, load_dataset
from ollamakit.load.driver import measure_sync
from ollamakit.types import Options

_ROWS: list[dict[str, Any]] = []  # worker: rows not yet reported
_MERGED: list[dict[str, Any]] = []  # master: every worker's rows
_COUNTER = itertools.count()


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _options() -> Options:
    options: Options = {"temperature": 0.0, "seed": int(_env("OLLAMAKIT_LOCUST_SEED", "42"))}
    num_predict = int(_env("OLLAMAKIT_LOCUST_NUM_PREDICT", "256"))
    if num_predict > 0:
        options["num_predict"] = num_predict
    return options


class OllamaUser(User):
    """One simulated person: sends a request, waits for the whole reply, thinks, repeats."""

    think_s = float(os.environ.get("OLLAMAKIT_LOCUST_THINK", "0") or 0)
    wait_time = between(think_s, think_s)

    def on_start(self) -> None:
        settings = load_settings(Flags())
        self.client_ = OllamaClient(settings)
        self.model = _env("OLLAMAKIT_LOCUST_MODEL")
        self.dataset = load_dataset(_env("OLLAMAKIT_LOCUST_DATASET") or None)
        self.options = _options()
        runner = self.environment.runner
        self.worker = str(getattr(runner, "client_id", "local"))

    def on_stop(self) -> None:
        self.client_.close()

    @task
    def chat(self) -> None:
        n = next(_COUNTER)
        item: Item = self.dataset.items[n % len(self.dataset.items)]
        started_wall_ns = time.time_ns()
        started_perf_ns = time.perf_counter_ns()
        outcome = measure_sync(
            self.client_, self.model, item, self.options, f"locust {self.worker} #{n}"
        )
        # The row's times on the wall clock (shared by machines, via NTP), so the master can
        # place requests of every worker on one time line.
        to_wall = started_wall_ns - started_perf_ns
        events_ = self.environment.events
        elapsed_ms = (outcome.end_ns - outcome.sent_ns) / 1e6
        events_.request.fire(
            request_type="chat",
            name=self.model,
            response_time=outcome.total_ms if outcome.total_ms is not None else elapsed_ms,
            response_length=outcome.eval_count or 0,
            exception=None if outcome.ok else RuntimeError(outcome.error or "error"),
            context={"ttft_ms": outcome.ttft_ms, "worker": self.worker},
        )
        for name, value in (
            ("ttft", outcome.ttft_ms),
            ("tpot", outcome.tpot_ms),
            ("itl_p95", outcome.itl_p95_ms),
        ):
            if value is not None:
                events_.request.fire(
                    request_type="METRIC",
                    name=name,
                    response_time=value,
                    response_length=0,
                    exception=None,
                    context={},
                )
        _ROWS.append(
            {
                "worker": self.worker,
                "index": n,
                "item": item.id,
                "category": item.category,
                "sent_wall_ns": outcome.sent_ns + to_wall,
                "end_wall_ns": outcome.end_ns + to_wall,
                "ok": outcome.ok,
                "error_kind": outcome.error_kind,
                "error": outcome.error,
                "ttft_ms": outcome.ttft_ms,
                "tpot_ms": outcome.tpot_ms,
                "total_ms": outcome.total_ms,
                "itl_p95_ms": outcome.itl_p95_ms,
                "load_ms": outcome.load_ms,
                "prompt_eval_count": outcome.prompt_eval_count,
                "prompt_eval_ms": outcome.prompt_eval_ms,
                "eval_count": outcome.eval_count,
                "eval_ms": outcome.eval_ms,
                "prompt_tps": outcome.prompt_tps,
                "eval_tps": outcome.eval_tps,
                "extra": outcome.extra,
            }
        )


if os.environ.get("OLLAMAKIT_LOCUST_LEVELS"):  # only then: otherwise -u/-r/-t apply

    class LevelShape(LoadTestShape):
        """Steps through ``OLLAMAKIT_LOCUST_LEVELS`` users, ``OLLAMAKIT_LOCUST_DURATION`` s each."""

        levels: ClassVar[list[int]] = [
            int(v) for v in os.environ.get("OLLAMAKIT_LOCUST_LEVELS", "").split(",") if v
        ]
        duration_s = float(os.environ.get("OLLAMAKIT_LOCUST_DURATION", "0") or 0)

        def tick(self) -> tuple[int, float] | None:
            if not self.levels or self.duration_s <= 0:
                return None
            run_time_s = float(self.get_run_time())  # type: ignore[no-untyped-call]
            step = int(run_time_s // self.duration_s)
            if step >= len(self.levels):
                return None
            users = self.levels[step]
            return users, float(users)


def _report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    data["ollamakit_rows"] = list(_ROWS)
    _ROWS.clear()


def _collect(client_id: str, data: dict[str, Any], **_: Any) -> None:
    _MERGED.extend(data.get("ollamakit_rows") or [])


def _started(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        _MERGED.append({"test_start_wall_ns": time.time_ns()})


def _quitting(environment: Environment, **_: Any) -> None:
    out = os.environ.get("OLLAMAKIT_LOCUST_OUT")
    if not out or isinstance(environment.runner, WorkerRunner):
        return
    if not isinstance(environment.runner, MasterRunner):  # a local run: its own rows
        _MERGED.extend(_ROWS)
    with open(out, "wb") as handle:
        handle.write(orjson.dumps(_MERGED))


# Plain calls rather than decorators: Locust's hooks are untyped.
events.report_to_master.add_listener(_report)  # type: ignore[no-untyped-call]
events.worker_report.add_listener(_collect)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_started)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_quitting)  # type: ignore[no-untyped-call]

__all__ = ["OllamaUser"]
