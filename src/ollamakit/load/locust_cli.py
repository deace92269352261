"""``ollamakit load --locust-master`` / ``--locust-worker HOST``: Locust runs, ollamakit reports.

The master runs ``python -m locust -f ollamakit/load/locust_user.py --master --headless`` with
the levels of ``--users`` (one :class:`~ollamakit.load.locust_user.LevelShape` step of
``--duration`` seconds each), waits for ``--locust-workers`` workers, and when Locust has
quit reads the merged rows every worker reported. They become one run: the same
:class:`~ollamakit.load.engine.LevelRun` values the in-process engine makes (on the wall
clock, since the rows come from several machines), so the analysis, the answer, the history
and every ``--output`` are those of ``ollamakit load``, with each request's ``worker``.

A worker runs ``locust ... --worker --master-host HOST`` and sends its requests to its own
``--base-url`` (credentials stay on the worker: they are handed to the child process in its
environment, never to Locust). ``--model``, ``--dataset``, ``--num-predict``, ``--seed`` and
``--think`` are the worker's.

Locust is imported only by the child processes; without the extra installed this says how to
install it (exit 2).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, UsageError
from ollamakit.i18n import t
from ollamakit.load.dataset import Item
from ollamakit.load.document import new_document, new_run_id, result_of
from ollamakit.load.engine import NS_PER_S, LevelRun, LoadRequest, Outcome, Phase, Sample
from ollamakit.load.plan import LoadPlan, Recorder, finish
from ollamakit.ui.terminal import Terminal


def _locustfile() -> str:
    spec = importlib.util.find_spec("ollamakit.load.locust_user")
    assert spec is not None and spec.origin is not None
    return spec.origin


def _full_url(settings: Settings) -> str:
    url = settings.base_url
    if url.username is None:
        return url.origin
    secret = f":{quote(url.password, safe='')}" if url.password is not None else ""
    return f"{url.scheme}://{quote(url.username, safe='')}{secret}@{url.netloc}{url.path}"


def _child_env(args: argparse.Namespace, settings: Settings, plan: LoadPlan) -> dict[str, str]:
    env = dict(os.environ)
    env["OLLAMA_BASE_URL"] = _full_url(settings)
    if settings.ca_bundle is not None:
        env["OLLAMA_CA_BUNDLE"] = str(settings.ca_bundle)
    env["OLLAMAKIT_LOCUST_MODEL"] = args.model or ""
    env["OLLAMAKIT_LOCUST_DATASET"] = args.dataset or ""
    env["OLLAMAKIT_LOCUST_NUM_PREDICT"] = str(plan.num_predict or -1)
    env["OLLAMAKIT_LOCUST_SEED"] = str(plan.schedule.seed)
    env["OLLAMAKIT_LOCUST_THINK"] = str(plan.schedule.think_s)
    return env


def run_locust(
    args: argparse.Namespace, settings: Settings, plan: LoadPlan, terminal: Terminal
) -> int:
    if importlib.util.find_spec("locust") is None:
        raise UsageError(t("load.no_locust"))
    if not args.model:
        raise UsageError(t("load.locust_model"))
    if args.locust_worker:
        return _worker(args, settings, plan, terminal)
    return _master(args, settings, plan, terminal)


def _worker(
    args: argparse.Namespace, settings: Settings, plan: LoadPlan, terminal: Terminal
) -> int:
    cmd = [
        sys.executable, "-m", "locust", "-f", _locustfile(), "--worker",
        "--master-host", args.locust_worker, "--master-port", str(args.locust_port),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    terminal.info(
        t("load.locust_worker", host=args.locust_worker, url=settings.base_url.redacted())
    )
    return subprocess.run(cmd, env=_child_env(args, settings, plan), stdout=sys.stderr).returncode


def _master(
    args: argparse.Namespace, settings: Settings, plan: LoadPlan, terminal: Terminal
) -> int:
    if plan.sweep or not plan.levels or plan.levels[0].kind != "users":
        raise UsageError(t("load.locust_users_only"))
    duration_s = plan.schedule.duration_s + plan.schedule.ramp_s
    fd, out = tempfile.mkstemp(prefix="ollamakit-locust-", suffix=".json")
    os.close(fd)
    env = _child_env(args, settings, plan)
    env["OLLAMAKIT_LOCUST_OUT"] = out
    env["OLLAMAKIT_LOCUST_LEVELS"] = ",".join(str(int(lv.value)) for lv in plan.levels)
    env["OLLAMAKIT_LOCUST_DURATION"] = str(duration_s)
    cmd = [
        sys.executable, "-m", "locust", "-f", _locustfile(), "--master", "--headless",
        "--expect-workers", str(args.locust_workers),
        "--master-bind-host", args.locust_bind, "--master-bind-port", str(args.locust_port),
        "--host", settings.base_url.redacted(), "--only-summary", "--loglevel", "WARNING",
        "--stop-timeout", str(int(plan.timeout_s)), "--exit-code-on-error", "0",
    ]  # fmt: skip
    terminal.info(
        t("load.locust_master", workers=args.locust_workers, port=args.locust_port,
          levels=",".join(lv.label for lv in plan.levels), duration=f"{duration_s:g}")
    )  # fmt: skip
    interrupted = False
    try:
        proc = subprocess.run(cmd, env=env, stdout=sys.stderr)
        interrupted = proc.returncode not in (0, 1)
    except KeyboardInterrupt:
        interrupted = True
    try:
        rows: list[dict[str, Any]] = orjson.loads(Path(out).read_bytes() or b"[]")
    except (OSError, orjson.JSONDecodeError):
        rows = []
    finally:
        Path(out).unlink(missing_ok=True)
    return _report(args, settings, plan, rows, interrupted, terminal)


def runs_from_rows(plan: LoadPlan, rows: list[dict[str, Any]]) -> list[LevelRun]:
    """The workers' rows as levels, placed by their send time on the master's level clock."""
    starts = [r["test_start_wall_ns"] for r in rows if "test_start_wall_ns" in r]
    requests = [r for r in rows if "sent_wall_ns" in r]
    if not requests:
        return []
    t0 = min(starts) if starts else min(r["sent_wall_ns"] for r in requests)
    step_ns = int((plan.schedule.duration_s + plan.schedule.ramp_s) * NS_PER_S)
    ramp_ns = int(plan.schedule.ramp_s * NS_PER_S)
    runs = [
        LevelRun(lv, t0 + i * step_ns, t0 + i * step_ns + ramp_ns, t0 + (i + 1) * step_ns)
        for i, lv in enumerate(plan.levels)
    ]
    for row in sorted(requests, key=lambda r: r["sent_wall_ns"]):
        i = min(max(0, (row["sent_wall_ns"] - t0) // step_ns), len(runs) - 1)
        run = runs[int(i)]
        item = Item(str(row.get("item", "?")), str(row.get("category", "?")), ())
        request = LoadRequest(int(row.get("index", 0)), run.level, None, item, row["sent_wall_ns"])
        outcome = Outcome(
            ok=bool(row["ok"]),
            sent_ns=row["sent_wall_ns"],
            end_ns=row["end_wall_ns"],
            error_kind=row.get("error_kind"),
            error=row.get("error"),
            ttft_ms=row.get("ttft_ms"),
            tpot_ms=row.get("tpot_ms"),
            total_ms=row.get("total_ms"),
            itl_p95_ms=row.get("itl_p95_ms"),
            load_ms=row.get("load_ms"),
            prompt_eval_count=row.get("prompt_eval_count"),
            prompt_eval_ms=row.get("prompt_eval_ms"),
            eval_count=row.get("eval_count"),
            eval_ms=row.get("eval_ms"),
            prompt_tps=row.get("prompt_tps"),
            eval_tps=row.get("eval_tps"),
            extra={**(row.get("extra") or {}), "worker": row.get("worker")},
        )
        phase: Phase = "measure" if row["sent_wall_ns"] >= run.window_start_ns else "ramp"
        run.samples.append(Sample(request, outcome, phase))
    return runs


def _report(
    args: argparse.Namespace,
    settings: Settings,
    plan: LoadPlan,
    rows: list[dict[str, Any]],
    interrupted: bool,
    terminal: Terminal,
) -> int:
    runs = runs_from_rows(plan, rows)
    if not runs and not interrupted:
        terminal.warn(t("load.locust_no_rows"))
        return int(ExitStatus.ERROR)
    store = None
    if not args.no_save:
        from ollamakit.store import HistoryStore

        store = HistoryStore.open(settings.home)
    doc = new_document(
        run_id=new_run_id(),
        label=plan.label,
        base_url=settings.base_url.redacted(),
        version=None,
        config={**plan.config(args.model), "engine": "locust", "workers": args.locust_workers},
    )
    recorder = Recorder(doc, args.model, store)
    try:
        recorder.begin()
        for run in runs:
            recorder.runs.append(run)
            for sample in run.samples:
                row = result_of(sample, args.model, run, worker=sample.outcome.extra.get("worker"))
                doc["results"].append(row)
                if store is not None:
                    store.add_result(doc["run_id"], row)
        doc = recorder.finish(plan.slo, interrupted)
    finally:
        if store is not None:
            store.close()
    return finish(doc, plan, saved=store is not None, settings=settings, terminal=terminal)


__all__ = ["run_locust", "runs_from_rows"]
