"""``ollamakit sim``: serve the simulated Ollama API until Ctrl-C or SIGTERM.

The umbrella CLI calls :func:`add_arguments` on its ``sim`` subparser and :func:`run` with the
parsed namespace; ``python -m ollamakit.sim`` does the same on its own. Configuration
precedence: 1. flags, 2. ``--config FILE``, 3. built-in defaults (three small models).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import queue
import signal
import sys
import threading
import time
from datetime import datetime
from typing import TextIO

from ollamakit.errors import OllamakitError
from ollamakit.i18n import t
from ollamakit.sim.config import (
    CLOUD_STATES,
    ENGINES,
    PRESETS,
    ModelSpec,
    SimConfig,
    default_models,
    load_config_file,
    parse_fault_flag,
    parse_model_flag,
    preset_models,
)
from ollamakit.sim.faults import fault_help
from ollamakit.sim.log import RequestRecord
from ollamakit.sim.profiles import DEFAULT_VERSION
from ollamakit.sim.server import LISTENING_PREFIX, SimServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help=t("sim.help_host"), metavar="ADDRESS")
    parser.add_argument("--port", type=port_number, default=11434, help=t("sim.help_port"))
    parser.add_argument("--config", metavar="FILE", help=t("sim.help_config"))
    parser.add_argument(
        "--model",
        dest="sim_models",
        action="append",
        default=[],
        metavar="NAME[,KEY=VALUE...]",
        help=t("sim.help_model"),
    )
    parser.add_argument(
        "--fault",
        dest="sim_faults",
        action="append",
        default=[],
        metavar="MODEL:KIND[:ARG]",
        help=fault_help(),
    )
    parser.add_argument(
        "--preset", metavar="NAME", help=t("sim.help_preset", presets=", ".join(PRESETS))
    )
    parser.add_argument("--engine", choices=ENGINES, help=t("sim.help_engine"))
    parser.add_argument("--cloud", choices=CLOUD_STATES, help=t("sim.help_cloud"))
    parser.add_argument("--vram-gib", type=float, metavar="GIB", help=t("sim.help_vram"))
    parser.add_argument("--speed", type=float, metavar="X", help=t("sim.help_speed"))
    parser.add_argument("--num-parallel", type=int, metavar="N", help=t("sim.help_num_parallel"))
    parser.add_argument("--max-queue", type=int, metavar="N", help=t("sim.help_max_queue"))
    parser.add_argument("--keep-alive", metavar="DURATION", help=t("sim.help_keep_alive"))
    parser.add_argument("--origins", metavar="LIST", help=t("sim.help_origins"))
    parser.add_argument(
        "--ollama-version", metavar="VERSION", help=t("sim.help_version", default=DEFAULT_VERSION)
    )
    parser.add_argument("--tls-cert", metavar="PEM", help=t("sim.help_tls_cert"))
    parser.add_argument("--tls-key", metavar="PEM", help=t("sim.help_tls_key"))
    parser.add_argument("--quiet", action="store_true", help=t("sim.help_quiet"))


def port_number(text: str) -> int:
    """argparse ``type`` for ``--port``: 0-65535, or a usage error (exit 2) that says so."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(t("sim.bad_port", value=text))
    return value


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Defaults < ``--preset`` < ``--config`` file < flags."""
    config = load_config_file(args.config) if getattr(args, "config", None) else None
    models: list[ModelSpec] = [parse_model_flag(m) for m in getattr(args, "sim_models", [])]
    preset = getattr(args, "preset", None)
    if preset:
        # A preset adds its models to the file's; --model flags add to both.
        presets = preset_models(preset)
        config = SimConfig(models=presets) if config is None else config.with_models(presets)
    if config is None:
        # Flags that name models replace the built-in set instead of adding to it.
        config = SimConfig(models=() if models else default_models())
    if models:
        config = config.with_models(models)
    overrides: dict[str, object] = {}
    for attr, key in (
        ("speed", "speed"),
        ("num_parallel", "num_parallel"),
        ("max_queue", "max_queue"),
        ("keep_alive", "keep_alive"),
        ("ollama_version", "version"),
        ("origins", "origins"),
        ("engine", "engine"),
        ("cloud", "cloud"),
        ("vram_gib", "vram_gib"),
    ):
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = value
    if overrides:
        config = SimConfig.from_dict({**config.to_dict(), **overrides})
    faults = [parse_fault_flag(f) for f in getattr(args, "sim_faults", [])]
    if faults:
        config = config.with_faults(faults)
    return config


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _rate(value: float) -> str:
    return "∞" if value == float("inf") else f"{value:g}"


def print_models(config: SimConfig, out: TextIO) -> None:
    """A short table of the served models and their scripts."""
    header = [
        t("sim.col_model"),
        t("sim.col_params"),
        t("sim.col_quant"),
        t("sim.col_size"),
        t("sim.col_thinking"),
        t("sim.col_kind"),
        t("sim.col_load"),
        t("sim.col_prompt_tps"),
        t("sim.col_eval_tps"),
        t("sim.col_reply"),
        t("sim.col_faults"),
    ]
    rows = [
        [
            spec.tag_name,
            spec.parameter_size,
            spec.quantization,
            _size(spec.size),
            t("sim.think_always")
            if spec.think_levels_only
            else t("sim.yes")
            if spec.thinking
            else "-",
            _kind(spec),
            f"{spec.load_ms:g}",
            _rate(spec.prompt_tps),
            _rate(spec.eval_tps),
            str(spec.reply_length),
            ", ".join(str(f) for f in spec.faults) or "-",
        ]
        for spec in config.models
    ]
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)
    if config.speed != 1:
        print(t("sim.speed_note", speed=f"{config.speed:g}"), file=out)
    print(
        t(
            "sim.limits",
            num_parallel=config.num_parallel,
            max_queue=config.max_queue,
            version=config.version,
            engine=config.engine,
        ),
        file=out,
        flush=True,
    )


def _kind(spec: ModelSpec) -> str:
    """``llm``, ``embedding``, ``cloud``; a partly offloaded model adds its GPU share."""
    if spec.gpu_share < 1:
        return t("sim.kind_offloaded", kind=spec.kind, percent=f"{spec.gpu_share * 100:.0f}")
    return spec.kind


def _width(text: str) -> int:
    # CJK column titles take two terminal cells per character.
    return sum(2 if "\u2e80" <= ch <= "\uffef" else 1 for ch in text)


def _request_line(record: RequestRecord) -> str:
    end = record.finished_ns or record.received_ns
    # When the request arrived, on the wall clock (the record's clock is monotonic).
    started = time.time() - (time.perf_counter_ns() - record.received_ns) / 1e9
    return t(
        "sim.request_line",
        time=datetime.fromtimestamp(started).strftime("%H:%M:%S.%f")[:-3],
        method=record.method,
        path=record.path,
        model=record.model or "-",
        status=record.status if record.status is not None else "-",
        ms=f"{(end - record.received_ns) / 1e6:.1f}",
        outcome=record.outcome,
    )


class LinePrinter:
    """Prints log lines from a background thread, so a slow or full stdout never blocks serving.

    A parent process that starts the simulator with a pipe and never reads it would otherwise
    freeze the event loop once the pipe buffer fills. Lines beyond ``limit`` waiting are dropped.
    """

    def __init__(self, out: TextIO, limit: int = 10_000) -> None:
        self._out = out
        self._queue: queue.Queue[str | None] = queue.Queue(limit)
        self.dropped = 0
        self._thread = threading.Thread(target=self._pump, name="sim-log", daemon=True)
        self._thread.start()

    def __call__(self, line: str) -> None:
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def _pump(self) -> None:
        while (line := self._queue.get()) is not None:
            with contextlib.suppress(OSError, ValueError):
                print(line, file=self._out, flush=True)

    def close(self, timeout: float = 1.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)


async def _serve(config: SimConfig, args: argparse.Namespace) -> int:
    quiet = bool(getattr(args, "quiet", False))
    printer = None if quiet else LinePrinter(sys.stdout)

    def log(record: RequestRecord) -> None:
        if printer is not None:
            printer(_request_line(record))

    server = SimServer(config, on_request=None if quiet else log)
    try:
        await server.start(
            args.host,
            args.port,
            tls_cert=getattr(args, "tls_cert", None),
            tls_key=getattr(args, "tls_key", None),
        )
    except OSError as exc:
        print(
            t("sim.bind_failed", address=f"{args.host}:{args.port}", detail=exc.strerror or exc),
            file=sys.stderr,
        )
        return 2
    print(LISTENING_PREFIX + server.url, flush=True)
    if not quiet:
        print_models(config, sys.stdout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
        if printer is not None:
            printer.close()
    if not quiet:
        with contextlib.suppress(OSError):
            print(t("sim.stopped"), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 when the configuration or address is bad."""
    try:
        config = config_from_args(args)
    except OllamakitError as exc:
        print(exc.message, file=sys.stderr)
        if exc.hint:
            print(exc.hint, file=sys.stderr)
        return 2
    if getattr(args, "tls_key", None) and not getattr(args, "tls_cert", None):
        print(t("sim.tls_key_without_cert"), file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(config, args))
    except KeyboardInterrupt:  # platforms without loop signal handlers
        return 0
