"""The umbrella command ``ollamakit`` and the one ``main()`` that maps errors to exit codes.

The commands are a table of typed :class:`Command` records. A record names the command, its
help text, which of the common options apply to it (:class:`Scope`: the server options
``--base-url``/``--ca-bundle``/``--insecure`` mean nothing to ``history`` or ``report``), and
how to load its :class:`CommandSpec` — the ``add_arguments`` and ``run`` functions of its
module, imported only when that command runs (start-up does not pay for the chat UI to run the
benchmark). ``run(args, settings, terminal)`` does no error handling: :func:`main` does it all,
once (httpie's ``main``/``program`` split), with the :class:`~ollamakit.ui.Terminal` it built.
The root scripts ``ollama-benchmark.py`` and ``hi-ai.py`` call :func:`main` with a fixed
command.

Help is drawn by :class:`HelpFormatter`: argparse's headings in the chosen language, and text
wrapped by display width (a CJK character takes two columns; argparse counts characters).

Exit codes (:class:`ollamakit.errors.ExitStatus`): 0 ok, 1 some requests failed,
2 could not run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import enum
import logging
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len
from rich.markup import escape

from ollamakit import __version__
from ollamakit.config import Flags, Settings, load_settings
from ollamakit.errors import (
    ConfigError,
    ConnectFailed,
    ExitStatus,
    OllamaError,
    OllamakitError,
    UsageError,
)
from ollamakit.i18n import detect_language, set_language, t
from ollamakit.ui.terminal import Terminal
from ollamakit.ui.wrap import wrap

if TYPE_CHECKING:
    from collections.abc import Iterable


class Scope(enum.Enum):
    """Which common options a command takes."""

    SERVER = "server"  # talks to a server: every common option
    LOCAL = "local"  # reads local settings only (the history): no server options
    STANDALONE = "standalone"  # needs no settings at all (the simulator)


RunWithSettings = Callable[[argparse.Namespace, Settings, Terminal], int]
RunStandalone = Callable[[argparse.Namespace, Terminal], int]
ConfigErrorHandler = Callable[[argparse.Namespace, ConfigError, Terminal], "int | None"]


@dataclass(frozen=True)
class CommandSpec:
    """What a command's module provides, once imported."""

    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: RunWithSettings | None = None  # Scope.SERVER / Scope.LOCAL
    run_standalone: RunStandalone | None = None  # Scope.STANDALONE
    #: reports settings that cannot be loaded its own way (doctor --json: a JSON document);
    #: ``None`` from it: print the error as usual
    config_error: ConfigErrorHandler | None = None
    #: shows the start-up warnings (--insecure, clear credentials) itself, as checks
    reports_warnings: bool = False


@dataclass(frozen=True)
class Command:
    name: str
    help_key: str
    scope: Scope
    load: Callable[[], CommandSpec]


def _bench() -> CommandSpec:
    from ollamakit.bench import cli

    return CommandSpec(cli.add_arguments, run=cli.run)


def _chat() -> CommandSpec:
    from ollamakit.chat import cli

    return CommandSpec(cli.add_arguments, run=cli.run)


def _doctor() -> CommandSpec:
    from ollamakit import doctor

    return CommandSpec(
        doctor.add_arguments,
        run=doctor.run,
        config_error=doctor.config_error,
        reports_warnings=True,
    )


def _sim() -> CommandSpec:
    from ollamakit.sim import cli

    def run(args: argparse.Namespace, terminal: Terminal) -> int:
        return cli.run(args)

    return CommandSpec(cli.add_arguments, run_standalone=run)


def _report() -> CommandSpec:
    from ollamakit.report import cli

    return CommandSpec(cli.add_arguments, run=cli.run)


def _load_cmd() -> CommandSpec:
    from ollamakit.load import cli

    return CommandSpec(cli.add_arguments, run=cli.run)


def _history() -> CommandSpec:
    from ollamakit.report import history_cli

    return CommandSpec(history_cli.add_arguments, run=history_cli.run)


COMMANDS: tuple[Command, ...] = (
    Command("bench", "cli.help_bench", Scope.SERVER, _bench),
    Command("chat", "cli.help_chat", Scope.SERVER, _chat),
    Command("doctor", "cli.help_doctor", Scope.SERVER, _doctor),
    Command("sim", "cli.help_sim", Scope.STANDALONE, _sim),
    Command("report", "cli.help_report", Scope.LOCAL, _report),
    Command("history", "cli.help_history", Scope.LOCAL, _history),
    Command("load", "load.help_command", Scope.SERVER, _load_cmd),
)
SERVER_OPTIONS = ("--base-url", "--ca-bundle", "--insecure", "--api")


def command_named(name: str) -> Command:
    return next(c for c in COMMANDS if c.name == name)


# --------------------------------------------------------------------------- help


_HEADINGS = {
    "options": "cli.heading_options",
    "optional arguments": "cli.heading_options",  # Python < 3.10 spelling
    "positional arguments": "cli.heading_positional",
}


_CJK_HEADING = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


def _escape_repl(text: str) -> str:
    """``text`` as the literal part of a :func:`re.sub` replacement."""
    return text.replace("\\", "\\\\")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout with translated headings and display-width wrapping.

    argparse wraps with :mod:`textwrap`, which counts characters, so a zh-TW help text runs
    to twice the terminal's width. The two text-filling hooks are replaced with
    :func:`ollamakit.ui.wrap.wrap` (display cells, breaks between CJK characters). These
    hooks are what the standard library's own ``RawTextHelpFormatter`` overrides; a
    description or epilog keeps its paragraphs (separated by blank lines); the lines inside
    a paragraph are joined and wrapped again to fit.
    """

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(
            usage, actions, groups, _usage_placeholder() if prefix is None else prefix
        )

    def start_section(self, heading: str | None) -> None:
        key = _HEADINGS.get(heading or "")
        heading = t(key) if key else heading
        if heading:
            self._headings.append(heading)
        super().start_section(heading)

    @property
    def _headings(self) -> list[str]:
        headings: list[str] | None = getattr(self, "_translated_headings", None)
        if headings is None:
            headings = []
            self._translated_headings = headings
        return headings

    def format_help(self) -> str:
        """argparse ends every heading with ":"; a Chinese heading takes the full-width "："."""
        text = super().format_help()
        for heading in self._headings:
            if _CJK_HEADING.search(heading):
                pattern = rf"(?m)^(\s*){re.escape(heading)}:$"
                text = re.sub(pattern, rf"\g<1>{_escape_repl(heading)}：", text)
        return text

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap(" ".join(text.split()), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        for paragraph in re.split(r"\n\s*\n", text.strip("\n")):
            if lines:
                lines.append("")
            lines.extend(indent + line for line in wrap(join_lines(paragraph), width))
        return "\n".join(lines)


def join_lines(paragraph: str) -> str:
    """One paragraph's lines as one line: a space between words, none between CJK text.

    >>> join_lines("one\\ntwo"), join_lines("好。\\n以管線")
    ('one two', '好。以管線')
    """
    out = ""
    for line in paragraph.splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if out and not (_is_wide(out[-1]) or _is_wide(line[0])):
            out += " "
        out += line
    return out


def _is_wide(char: str) -> bool:
    return cell_len(char) == 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse with our help formatter, a translated ``-h`` and translated "error:"."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs["add_help"] = False
        super().__init__(*args, **kwargs)
        self.add_argument("-h", "--help", action="help", help=t("cli.help_help"))

    def format_usage(self) -> str:
        return _real_usage(super().format_usage())

    def format_help(self) -> str:
        return _real_usage(super().format_help())

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(2, t("cli.usage_error", prog=self.prog, message=message) + "\n")


def _usage_placeholder() -> str:
    """argparse lays the usage out by the prefix's *length*; a CJK prefix (``用法：``) is
    wider than that. It is given a placeholder as long as the prefix is wide, replaced in the
    finished text (:func:`_real_usage`)."""
    return "\x01" * cell_len(t("cli.usage_prefix"))


def _real_usage(text: str) -> str:
    placeholder = _usage_placeholder()
    if text.startswith(placeholder):
        return t("cli.usage_prefix") + text[len(placeholder) :]
    return text


def add_common_arguments(
    parser: argparse.ArgumentParser, scope: Scope = Scope.SERVER, *, sub: bool = False
) -> None:
    """The options every command takes (design.md), before or after the command name;
    the server options only where ``scope`` talks to a server.

    On a sub-command's parser the defaults are suppressed: argparse would otherwise let the
    sub-parser's ``None`` overwrite a value given before the command
    (``ollamakit --lang zh-TW history``).
    """
    group = parser.add_argument_group(t("cli.common_group"))
    extra: dict[str, Any] = {"default": argparse.SUPPRESS} if sub else {}
    server = scope is Scope.SERVER
    if server:
        group.add_argument(
            "--base-url", metavar="URL", action=_BaseURL, help=t("cli.help_base_url"), **extra
        )
    if scope is not Scope.STANDALONE:
        group.add_argument("--env-file", metavar="PATH", help=t("cli.help_env_file"), **extra)
    if server:
        group.add_argument("--ca-bundle", metavar="PATH", help=t("cli.help_ca_bundle"), **extra)
        group.add_argument("--insecure", action="store_true", help=t("cli.help_insecure"), **extra)
        group.add_argument("--api", metavar="auto|ollama|openai", help=t("cli.help_api"), **extra)
    group.add_argument("--lang", choices=["en", "zh-TW"], help=t("cli.help_lang"), **extra)
    group.add_argument("--debug", action="store_true", help=t("cli.help_debug"), **extra)
    group.add_argument(
        "--version",
        action="version",
        version=f"ollamakit {__version__}",
        help=t("cli.help_version"),
    )


class _BaseURL(argparse.Action):
    """``--base-url``: the last one wins (as ever), and every one given is kept in
    ``base_urls`` for ``bench``, which compares servers (``bench/compare.py``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        given = list(getattr(namespace, "base_urls", None) or [])
        namespace.base_urls = [*given, values]


def _command_parser(
    parser: argparse.ArgumentParser, command: Command, spec: CommandSpec | None, *, sub: bool
) -> None:
    if spec is not None:
        spec.add_arguments(parser)
        # A command may have set its own formatter (raw epilog): ours keeps line breaks too.
        parser.formatter_class = HelpFormatter
    add_common_arguments(parser, command.scope, sub=sub)


def build_parser(
    only: str | None = None, prog: str | None = None, argv: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """The full ``ollamakit`` parser, or a single command's (for the root scripts).

    Only the chosen command's module is imported (found by scanning ``argv``); the others get
    a bare sub-parser so ``ollamakit --help`` still lists them.
    """
    if only is not None:
        command = command_named(only)
        parser = ArgumentParser(prog=prog, description=t(command.help_key))
        _command_parser(parser, command, command.load(), sub=False)
        parser.set_defaults(command=command.name)
        return parser
    parser = ArgumentParser(prog=prog or "ollamakit", description=t("cli.description"))
    add_common_arguments(parser)
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, title=t("cli.heading_commands")
    )
    chosen = next((a for a in argv if a in {c.name for c in COMMANDS}), None)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=t(command.help_key), description=t(command.help_key))
        spec = command.load() if command.name == chosen else None
        _command_parser(p, command, spec, sub=True)
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
        chat_timeout_s=getattr(args, "chat_timeout", None),
        api=_single_api(args),
    )


def _single_api(args: argparse.Namespace) -> str | None:
    """``--api``; a list (``ollama,openai``: bench compares) is read by bench itself."""
    api = getattr(args, "api", None)
    if isinstance(api, str) and "," in api and getattr(args, "command", None) != "bench":
        raise UsageError(t("cli.api_list_bench_only", value=api))
    return None if not isinstance(api, str) or "," in api else api


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


def _check_scope(args: argparse.Namespace, command: Command) -> None:
    """``ollamakit --base-url URL history``: the top-level parser took a server option that
    the command does not use; say so rather than ignore it."""
    if command.scope is Scope.SERVER:
        return
    for option in SERVER_OPTIONS:
        if getattr(args, option[2:].replace("-", "_"), None):
            raise UsageError(t("cli.option_not_for", option=option, command=command.name))


def startup_warnings(settings: Settings, terminal: Terminal) -> None:
    if settings.insecure:
        terminal.warn(t("cli.warn_insecure"))
    if settings.credentials_in_clear:
        terminal.warn(t("cli.warn_clear_credentials", url=settings.base_url.redacted()))


def _debug_banner(settings: Settings | None, terminal: Terminal) -> None:
    terminal.stderr.print(
        f"[dim]ollamakit {__version__} · Python {platform.python_version()} · "
        f"{escape(platform.platform())} · httpx {_version_of('httpx')}[/]"
    )
    if settings is not None:
        sources = ", ".join(f"{k}={v}" for k, v in settings.sources.items())
        terminal.stderr.print(
            f"[dim]server {escape(settings.base_url.redacted())} · {escape(sources)}[/]"
        )


def _version_of(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main(
    argv: Sequence[str] | None = None,
    *,
    command: str | None = None,
    prog: str | None = None,
    terminal: Terminal | None = None,
) -> int:
    """Run a command; return its exit status. Every error becomes a message and a code here.

    ``terminal``: where output goes (tests pass :meth:`Terminal.for_test`); by default the
    process's own streams.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _early_language(argv)
    term = Terminal.from_env() if terminal is None else terminal
    debug = "--debug" in argv
    settings: Settings | None = None
    spec: CommandSpec | None = None
    try:
        parser = build_parser(only=command, prog=prog, argv=argv)
        args = parser.parse_args(argv)
        if debug:
            logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
            # httpx/httpcore trace every byte; our own "ollamakit.http" log is the request log.
            for noisy in ("httpcore", "httpx", "asyncio"):
                logging.getLogger(noisy).setLevel(logging.WARNING)
        chosen = command_named(args.command)
        _check_scope(args, chosen)
        spec = chosen.load()
        if spec.run_standalone is not None:
            if debug:
                _debug_banner(None, term)
            return int(spec.run_standalone(args, term))
        assert spec.run is not None, f"{chosen.name}: a CommandSpec needs a run function"
        try:
            settings = load_settings(_flags(args))
        except ConfigError as exc:
            # A command may report it its own way (doctor --json: as a JSON document).
            handler = spec.config_error
            status = None if handler is None or debug else handler(args, exc, term)
            if status is None:
                raise
            return int(status)
        set_language(settings.lang)
        term.language = settings.lang
        if debug:
            _debug_banner(settings, term)
        if not spec.reports_warnings and chosen.scope is Scope.SERVER:
            startup_warnings(settings, term)
        return int(spec.run(args, settings, term))
    except OllamakitError as exc:
        if debug:
            _print_traceback()  # --debug shows where; the exit status stays the same
        term.print_error(exc)
        if (
            isinstance(exc, ConnectFailed)
            and settings is not None
            and settings.sources.get("OLLAMA_BASE_URL") == "default"
            and not (spec is not None and spec.reports_warnings)  # doctor says it its own way
        ):
            # A newcomer without a server: say what was tried and the two ways forward.
            term.info(t("cli.default_url_hint", url=settings.base_url.redacted()))
        if isinstance(exc, OllamaError) and not (spec is not None and spec.reports_warnings):
            term.info(t("errors.see_doctor"))  # a server problem: the doctor checks each step
        return int(exc.exit_status)
    except KeyboardInterrupt:
        if debug:
            _print_traceback()
        term.stderr.print(f"[yellow]{escape(t('cli.interrupted'))}[/]")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a message.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return int(ExitStatus.OK)
    except Exception as exc:
        if debug:
            _print_traceback()
        term.print_unexpected(exc)
        return int(ExitStatus.ERROR)


def _print_traceback() -> None:
    import traceback

    traceback.print_exc(file=sys.stderr)


def bench_main() -> int:
    return main(command="bench", prog="ollama-benchmark.py")


def chat_main() -> int:
    return main(command="chat", prog="hi-ai.py")
