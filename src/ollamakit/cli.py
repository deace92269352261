"""The umbrella command ``ollamakit`` and the one ``main()`` that maps errors to exit codes.

Each command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args, settings) -> int`` (and ``REPORTS_WARNINGS = True`` if it shows the start-up
warnings itself, as ``doctor`` does) (the simulator: ``run(args)``, it needs no client settings).
A module may also define ``config_error(args, error) -> int | None`` to report settings that
cannot be loaded its own way (``doctor --json`` prints them as its JSON document).
Those functions do no error handling: :func:`main` does it all, once (httpie's
``main``/``program`` split). The root scripts ``ollama-benchmark.py`` and ``hi-ai.py`` call
:func:`main` with a fixed command.

Exit codes (:class:`ollamakit.errors.ExitStatus`): 0 ok, 1 some requests failed,
2 could not run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ollamakit import __version__, console
from ollamakit.config import Flags, Settings, load_settings
from ollamakit.errors import ConfigError, ConnectFailed, ExitStatus, OllamakitError
from ollamakit.i18n import detect_language, set_language, t


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help_key: str
    needs_settings: bool = True


COMMANDS = (
    Command("bench", "ollamakit.bench.cli", "cli.help_bench"),
    Command("chat", "ollamakit.chat.cli", "cli.help_chat"),
    Command("doctor", "ollamakit.doctor", "cli.help_doctor"),
    Command("sim", "ollamakit.sim.cli", "cli.help_sim", needs_settings=False),
    Command("report", "ollamakit.report.cli", "cli.help_report"),
    Command("history", "ollamakit.report.history_cli", "cli.help_history"),
    Command("load", "ollamakit.load.cli", "load.help_command"),
)


def add_common_arguments(parser: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """The options every command takes (design.md), before or after the command name.

    On a sub-command's parser the defaults are suppressed: argparse would otherwise let the
    sub-parser's ``None`` overwrite a value given before the command
    (``ollamakit --lang zh-TW history``).
    """
    group = parser.add_argument_group(t("cli.common_group"))
    extra: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    group.add_argument("--base-url", metavar="URL", help=t("cli.help_base_url"), **extra)
    group.add_argument("--env-file", metavar="PATH", help=t("cli.help_env_file"), **extra)
    group.add_argument("--ca-bundle", metavar="PATH", help=t("cli.help_ca_bundle"), **extra)
    group.add_argument("--insecure", action="store_true", help=t("cli.help_insecure"), **extra)
    group.add_argument("--lang", choices=["en", "zh-TW"], help=t("cli.help_lang"), **extra)
    group.add_argument("--debug", action="store_true", help=t("cli.help_debug"), **extra)
    group.add_argument(
        "--version",
        action="version",
        version=f"ollamakit {__version__}",
        help=t("cli.help_version"),
    )


def _load(command: Command) -> Any:
    return importlib.import_module(command.module)


def build_parser(
    only: str | None = None, prog: str | None = None, argv: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The full ``ollamakit`` parser, or a single command's (for the root scripts).

    Only the chosen command's module is imported (found by scanning ``argv``), so start-up
    does not pay for importing the chat UI to run the benchmark; the others get a bare
    sub-parser so ``ollamakit --help`` still lists them.
    """
    if only is not None:
        command = next(c for c in COMMANDS if c.name == only)
        parser = argparse.ArgumentParser(prog=prog, description=t(command.help_key))
        _load(command).add_arguments(parser)
        add_common_arguments(parser)
        parser.set_defaults(command=command.name)
        return parser
    parser = argparse.ArgumentParser(prog=prog or "ollamakit", description=t("cli.description"))
    add_common_arguments(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if a in {c.name for c in COMMANDS}), None)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=t(command.help_key), description=t(command.help_key))
        if command.name == chosen:
            _load(command).add_arguments(p)
        add_common_arguments(p, sub=True)
    return parser


def _flags(args: argparse.Namespace) -> Flags:
    return Flags(
        base_url=getattr(args, "base_url", None),
        env_file=getattr(args, "env_file", None),
        ca_bundle=getattr(args, "ca_bundle", None),
        insecure=bool(getattr(args, "insecure", False)),
        lang=getattr(args, "lang", None),
        debug=bool(getattr(args, "debug", False)),
        model=_single_model(args),
        timeout_s=getattr(args, "timeout", None),
    )


def _single_model(args: argparse.Namespace) -> str | None:
    model = getattr(args, "model", None)
    if isinstance(model, list):
        return None  # bench takes several; it reads them from args itself
    return model if isinstance(model, str) else None


def _early_language(argv: Sequence[str]) -> None:
    """Set the language before argparse renders --help (``--lang`` is not parsed yet)."""
    flag = None
    for i, arg in enumerate(argv):
        if arg == "--lang" and i + 1 < len(argv):
            flag = argv[i + 1]
        elif arg.startswith("--lang="):
            flag = arg.split("=", 1)[1]
    set_language(detect_language(flag, os.environ))


def startup_warnings(settings: Settings) -> None:
    if settings.insecure:
        console.warn(t("cli.warn_insecure"))
    if settings.credentials_in_clear:
        console.warn(t("cli.warn_clear_credentials", url=settings.base_url.redacted()))


def _debug_banner(settings: Settings | None) -> None:
    console.stderr.print(
        f"[dim]ollamakit {__version__} · Python {platform.python_version()} · "
        f"{platform.platform()} · httpx {_version_of('httpx')}[/]"
    )
    if settings is not None:
        sources = ", ".join(f"{k}={v}" for k, v in settings.sources.items())
        console.stderr.print(f"[dim]server {settings.base_url.redacted()} · {sources}[/]")


def _version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main(
    argv: Sequence[str] | None = None, *, command: str | None = None, prog: str | None = None
) -> int:
    """Run a command; return its exit status. Every error becomes a message and a code here."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _early_language(argv)
    debug = "--debug" in argv
    settings: Settings | None = None
    module: Any = None
    try:
        parser = build_parser(only=command, prog=prog, argv=argv)
        args = parser.parse_args(argv)
        if debug:
            logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
            # httpx/httpcore trace every byte; our own "ollamakit.http" log is the request log.
            for noisy in ("httpcore", "httpx", "asyncio"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
        spec = next(c for c in COMMANDS if c.name == args.command)
        module = _load(spec)
        if not spec.needs_settings:
            if debug:
                _debug_banner(None)
            return int(module.run(args))
        try:
            settings = load_settings(_flags(args))
        except ConfigError as exc:
            # A command may report it its own way (doctor --json: as a JSON document).
            handler = getattr(module, "config_error", None)
            status = None if handler is None or debug else handler(args, exc)
            if status is None:
                raise
            return int(status)
        set_language(settings.lang)
        if debug:
            _debug_banner(settings)
        if not getattr(module, "REPORTS_WARNINGS", False):  # doctor lists them as checks
            startup_warnings(settings)
        return int(module.run(args, settings))
    except OllamakitError as exc:
        if debug:
            raise
        console.print_error(exc)
        if (
            isinstance(exc, ConnectFailed)
            and settings is not None
            and settings.sources.get("OLLAMA_BASE_URL") == "default"
            and not getattr(module, "REPORTS_WARNINGS", False)  # doctor says it its own way
        ):
            # A newcomer without a server: say what was tried and the two ways forward.
            console.info(t("cli.default_url_hint", url=settings.base_url.redacted()))
        return int(exc.exit_status)
    except KeyboardInterrupt:
        if debug:
            raise
        console.stderr.print(f"[yellow]{t('cli.interrupted')}[/]")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return int(ExitStatus.OK)
    except Exception as exc:
        if debug:
            raise
        console.print_unexpected(exc)
        return int(ExitStatus.ERROR)


def bench_main() -> int:
    return main(command="bench", prog="ollama-benchmark.py")


def chat_main() -> int:
    return main(command="chat", prog="hi-ai.py")
