"""The chat loop: read a message, stream the reply, repeat — on a terminal or from a pipe.

Flow
----
:func:`run_chat` lists the server's models (an unreachable server fails here, exit 2), picks
the model (``--model`` > ``OLLAMA_MODEL`` > the only one > a picker; from a pipe, the newest),
opens the transcript and hands over to :class:`ChatApp`, which reads from one of two inputs:

* :class:`~ollamakit.chat.prompt.PromptInput` (stdin and stdout are terminals): prompt_toolkit
  with a history file, completion, ``\"\"\"`` blocks and bracketed paste (imported only then:
  piped runs start faster without it);
* :class:`LineInput` (anything else): one message per line, no prompt, no colour.

Sending a message (:meth:`ChatApp.send`)
----------------------------------------
The user's message is written to the transcript first. While the reply streams, SIGINT is
routed through :class:`SigintGuard`: outside drawing it raises ``KeyboardInterrupt`` at once
(so Ctrl-C works even while the socket waits for a stalled server), inside drawing it is
deferred until the frame is complete (so output is never torn). Keyboard echo is switched off
meanwhile (:func:`quiet_tty`), so keys typed ahead do not scribble over the reply; they stay
queued for the next prompt. Leaving the ``with`` block closes the HTTP response, which is how
Ollama learns to stop generating. However the request ends — done, Ctrl-C, error, even
SIGTERM/SIGHUP — :meth:`ChatApp._conclude` records it in the transcript and the session
before anything is drawn.

Errors mid-chat print the same message and fix as ``doctor`` (``✘`` what happened, ``→`` what
to do; word-wrapped on a terminal, :meth:`Terminal.print_error` otherwise) and the session goes
on; the message waits for ``/retry``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Protocol

from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ollamakit.chat.models import format_size, model_table, resolve_model
from ollamakit.chat.render import (
    Outcome,
    PlainReplyView,
    ReplyView,
    RichReplyView,
)
from ollamakit.chat.session import (
    COMMANDS,
    OPTION_NAMES,
    ChatSession,
    Command,
    LineAssembler,
    OptionError,
    Reply,
    ReplyStats,
    format_ms,
    message_text,
    parse_command,
    parse_think,
)
from ollamakit.chat.transcript import Transcript
from ollamakit.client import Chunk, OllamaClient
from ollamakit.config import Settings
from ollamakit.domain import StreamEnd
from ollamakit.errors import ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.types import ModelEntry
from ollamakit.ui.tables import print_table
from ollamakit.ui.terminal import Terminal

if TYPE_CHECKING:
    from ollamakit.chat.prompt import PromptInput

HISTORY_FILE: Final = "chat_history"


# --------------------------------------------------------------------------- terminal plumbing


class SigintGuard:
    """Ctrl-C during a reply: immediate, except while a frame is being drawn (then deferred)."""

    def __init__(self) -> None:
        self._shielded = 0
        self._pending = False

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if self._shielded:
            self._pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        try:
            previous = signal.signal(signal.SIGINT, self._handler)
            installed = True
        except ValueError:  # not the main thread (tests): leave SIGINT alone
            previous, installed = None, False
        try:
            yield
        finally:
            if installed:
                signal.signal(signal.SIGINT, previous)
            self._pending = False

    @contextlib.contextmanager
    def shield(self, *, deliver: bool = True) -> Iterator[None]:
        """Defer Ctrl-C to the end of the block; ``deliver=False`` drops it (already stopping)."""
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
        if not self._shielded and self._pending:
            self._pending = False
            if deliver:
                raise KeyboardInterrupt


@contextlib.contextmanager
def quiet_tty(stream: Any = None) -> Iterator[None]:
    """No echo, no line editing on the terminal while a reply streams; Ctrl-C still signals."""
    stream = sys.stdin if stream is None else stream
    saved: list[Any] | None = None
    try:
        import termios

        fd = stream.fileno()
        if os.isatty(fd):
            saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] = quiet[3] & ~(termios.ECHO | termios.ICANON)
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


class _Terminated(SystemExit):
    """SIGTERM/SIGHUP: leave through every ``finally`` so the transcript is complete."""


@contextlib.contextmanager
def _exit_on_signals() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated(128 + signum)

    previous: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is None:
            continue
        with contextlib.suppress(ValueError):  # not the main thread
            previous[number] = signal.signal(number, handler)
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


# --------------------------------------------------------------------------- input


class Input(Protocol):
    interactive: bool

    def read(self) -> str | None:
        """The next message or command; None at end of input. Ctrl-C raises KeyboardInterrupt."""
        ...


class LineInput:
    """Messages from a pipe or file: one per line, ``\"\"\"`` blocks joined."""

    interactive = False

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._assembler = LineAssembler()

    def read(self) -> str | None:
        for line in self._lines:
            message = self._assembler.feed(line)
            if message is not None:
                return message
        return self._assembler.flush()


# --------------------------------------------------------------------------- one reply


class _Collector:
    """What a stream delivered so far: its text, and the recorder measuring it."""

    __slots__ = ("content", "end", "recorder", "started_ns", "thinking")

    def __init__(self) -> None:
        self.started_ns = time.perf_counter_ns()
        self.recorder = ReplyRecorder(self.started_ns)
        self.content: list[str] = []
        self.thinking: list[str] = []
        self.end: StreamEnd | None = None  # how the stream itself says it ended

    def start(self, sent_ns: int) -> None:
        """The request is being sent: measure from the client's own stamp."""
        self.recorder = ReplyRecorder(sent_ns)

    def add(self, chunk: Chunk) -> tuple[str, str]:
        self.recorder.add(chunk)
        thinking, content = chunk.thinking, chunk.content
        if thinking:
            self.thinking.append(thinking)
        if content:
            self.content.append(content)
        return thinking, content

    def stats(self, end: StreamEnd | None, error: str | None = None) -> ReplyStats:
        sent_ns = self.recorder.sent_ns
        measurement = self.recorder.finish(end or self.end, error)
        elapsed_ms = (time.perf_counter_ns() - sent_ns) / 1e6
        return ReplyStats.from_measurement(measurement, elapsed_ms=elapsed_ms)


# --------------------------------------------------------------------------- the app


class ChatApp:
    """One chat session: commands, requests, transcript. Returns an exit status from :meth:`run`."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: OllamaClient,
        session: ChatSession,
        models: list[ModelEntry],
        transcript: Transcript,
        out: Console,
        view_factory: Callable[[str], ReplyView],
        terminal: Terminal | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.session = session
        self.models = models
        self.transcript = transcript
        self.out = out
        self.view_factory = view_factory
        self.terminal = terminal
        self.guard = SigintGuard()
        self.interactive = False

    # -- output helpers

    def info(self, text: str) -> None:
        self.out.print(Text(text, style="dim"))

    def note(self, text: str) -> None:
        self.out.print(Text(text))

    def hint(self, text: str) -> None:
        self.out.print(Text(text, style="yellow"))

    def error(self, exc: OllamakitError) -> None:
        """The doctor-style message (``✘`` what happened, ``→`` what to do), word-wrapped."""
        if not self.interactive:
            (self.terminal or Terminal.from_env()).print_error(exc)
            return
        self.out.print(Text(f"✘ {exc.message}", style="bold red"))
        for line in (exc.hint or "").splitlines():
            self.out.print(Padding(Text.assemble(("→ ", "cyan"), line), (0, 0, 0, 2)))

    # -- the loop

    def run(self, source: Input) -> int:
        self.interactive = source.interactive
        with _exit_on_signals():
            while True:
                try:
                    line = source.read()
                except KeyboardInterrupt:
                    self.hint(t("chat.how_to_leave"))
                    continue
                if line is None:
                    break
                if not line.strip():
                    continue
                command = parse_command(line)
                if command is None:
                    self.send(message_text(line))
                    continue
                try:
                    if self.dispatch(command) == "bye":
                        break
                except KeyboardInterrupt:  # e.g. Ctrl-C while /models waits for the server
                    if not self.interactive:
                        raise
                    self.hint(t("chat.interrupted_mark"))
        if self.session.totals.failed and not self.interactive:
            return int(ExitStatus.FAILURES)
        return int(ExitStatus.OK)

    def send(self, text: str) -> None:
        """One request: stream the reply into a view; record the outcome whatever happens."""
        session = self.session
        self.transcript.write("user", content=text, model=session.model)
        messages = session.messages_for(text)
        view = self.view_factory(session.model)
        collected = _Collector()
        outcome: Outcome = "interrupted"  # whatever escapes below (Ctrl-C, SIGTERM) cuts it short
        error: OllamakitError | None = None
        guard = self.guard
        with guard.active():
            try:
                with quiet_tty() if self.interactive else contextlib.nullcontext():
                    view.start()
                    with self.client.stream_chat(
                        session.model,
                        messages,
                        options=session.request_options(),
                        think=session.think,
                    ) as stream:
                        collected.start(stream.sent_ns)
                        for chunk in stream:
                            with guard.shield():
                                thinking, content = collected.add(chunk)
                                view.thinking(thinking)
                                view.content(content)
                        collected.end = stream.end
                outcome = "done"
            except KeyboardInterrupt:
                outcome = "interrupted"
            except OllamakitError as exc:
                outcome, error = "failed", exc
            finally:
                with guard.shield(deliver=False):  # a second Ctrl-C while wrapping up: ignored
                    self._conclude(text, collected, outcome, error, view)
        if outcome == "interrupted" and not self.interactive:
            # Ctrl-C with piped input stops the whole run (exit 130), not just this reply.
            raise KeyboardInterrupt

    def _conclude(
        self,
        text: str,
        collected: _Collector,
        outcome: Outcome,
        error: OllamakitError | None,
        view: ReplyView,
    ) -> None:
        session = self.session
        end: StreamEnd | None = None  # done: the recorder tells done from a cut stream
        if outcome != "done":
            end = "interrupted" if outcome == "interrupted" else "error"
        stats = collected.stats(end, None if error is None else error.short)
        content, thinking = "".join(collected.content), "".join(collected.thinking)
        # 1. the record: transcript and session, before anything that could fail is drawn
        if error is not None:
            self.transcript.write(
                "error",
                model=session.model,
                error=error.short,
                kind=type(error).__name__,
                content=content,
                thinking=thinking,
                stats=stats.as_dict(),
            )
            session.record_failure(text)
        else:
            reply = Reply(
                model=session.model,
                content=content,
                thinking=thinking,
                interrupted=outcome == "interrupted",
                stats=stats,
            )
            self.transcript.write(
                "reply",
                model=reply.model,
                content=content,
                thinking=thinking,
                interrupted=reply.interrupted,
                stats=stats.as_dict(),
            )
            session.record(text, reply)
        # 2. the screen
        view.finish(outcome, stats)
        if error is not None:
            self.error(error)
            if self.interactive:
                self.hint(t("chat.kept_for_retry"))
        elif outcome == "interrupted" and session.pending is not None and self.interactive:
            self.hint(t("chat.kept_for_retry"))

    # -- commands

    def dispatch(self, command: Command) -> str | None:
        if command.spec is None:
            if command.suggestion:
                self.hint(
                    t(
                        "chat.unknown_command_suggest",
                        name=command.name,
                        suggestion=command.suggestion,
                    )
                )
            else:
                self.hint(t("chat.unknown_command", name=command.name))
            return None
        handler = getattr(self, f"cmd_{command.spec.name}")
        result: str | None = handler(command.arg)
        return result

    def cmd_help(self, arg: str) -> None:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for spec in COMMANDS:
            names = " ".join(f"/{n}" for n in (spec.name, *spec.aliases))
            usage = f"{names} {spec.usage}".rstrip()
            table.add_row(usage, t(spec.help_key))
        self.out.print(table)
        self.info(t("chat.help_keys"))

    def _refresh_models(self) -> bool:
        try:
            self.models = self.client.list_models()
        except OllamakitError as exc:
            self.error(exc)
            return False
        return True

    def cmd_models(self, arg: str) -> None:
        if not self._refresh_models():
            return
        if not self.models:
            self.hint(t("chat.no_models"))
            return
        self.out.print(model_table(self.models, current=self.session.model, headers=_headers()))

    def cmd_model(self, arg: str) -> None:
        if not arg:
            self.note(t("chat.model_current", model=self.session.model))
            self.info(t("chat.model_usage"))
            return
        if not self._refresh_models():
            return
        name = resolve_model(arg, self.models)
        if name is None:
            self.hint(t("chat.model_not_here", model=arg))
            return
        self.session.model = name
        self.transcript.write("model", model=name)
        self.note(t("chat.model_switched", model=name, turns=len(self.session.turns)))

    def cmd_system(self, arg: str) -> None:
        if not arg:
            current = self.session.system
            self.note(t("chat.system_current", text=current) if current else t("chat.system_none"))
            return
        self.session.system = arg
        self.transcript.write("system", content=arg)
        self.note(t("chat.system_set"))

    def cmd_clear(self, arg: str) -> None:
        self.session.clear()
        self.transcript.write("clear")
        self.note(t("chat.cleared"))

    def cmd_save(self, arg: str) -> None:
        if not arg:
            self.hint(t("chat.save_usage"))
            return
        path = Path(arg).expanduser()
        text = self.session.to_markdown(
            server=self.settings.base_url.redacted(),
            title=t("chat.md_title"),
            you=t("chat.md_you"),
            interrupted=t("chat.interrupted_mark"),
        )
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            self.hint(t("chat.save_failed", path=str(path), error=exc.strerror or str(exc)))
            return
        self.transcript.write("save", path=str(path.resolve()))
        self.note(t("chat.saved", path=str(path), turns=len(self.session.turns)))

    def cmd_stats(self, arg: str) -> None:
        session, totals = self.session, self.session.totals
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        tps = totals.eval_tps
        # The server counts tokens only in a reply's last chunk, which an interrupted reply
        # never gets: say that its tokens are missing rather than pass the sum off as a total.
        tokens = "chat.st_tokens_value_partial" if totals.interrupted else "chat.st_tokens_value"
        rows = [
            (t("chat.st_model"), session.model),
            (t("chat.st_turns"), str(len(session.turns))),
            (
                t("chat.st_replies"),
                t(
                    "chat.st_replies_value",
                    replies=totals.replies,
                    interrupted=totals.interrupted,
                    failed=totals.failed,
                ),
            ),
            (
                t("chat.st_tokens"),
                t(tokens, prompt=totals.prompt_tokens, reply=totals.reply_tokens),
            ),
            (t("chat.st_speed"), f"{tps:.1f} tok/s" if tps is not None else "—"),
            (t("chat.st_ttft"), format_ms(totals.median_ttft_ms)),
            (t("chat.st_time"), format_ms(totals.wall_ms)),
            (t("chat.st_options"), _options_text(session)),
        ]
        path = str(self.transcript.path)
        labels = [label for label, _ in rows] + [t("chat.st_transcript")]
        # The path in one piece, to copy: in the table when it fits on the line, else on a
        # line of its own (where a terminal soft-wraps it, which copies as one line).
        inline = max(map(cell_len, labels)) + 2 + cell_len(path) <= self.out.width
        for label, value in rows:
            table.add_row(label, Text(value))
        if inline:
            table.add_row(t("chat.st_transcript"), Text(path, no_wrap=True))
        print_table(self.out, table)
        if not inline:
            self.out.print(Text(t("chat.st_transcript"), style="dim"))
            self.out.print(Text(path), soft_wrap=True)

    def cmd_set(self, arg: str) -> None:
        name, _, value = arg.partition(" ")
        if not name or not value.strip():
            self.note(t("chat.set_current", options=_options_text(self.session)))
            self.info(t("chat.set_usage", names=", ".join(OPTION_NAMES)))
            return
        try:
            result = self.session.set_option(name.lower(), value.strip())
        except OptionError as exc:
            self.hint(t(exc.key, **exc.params))
            return
        self.transcript.write("options", options=dict(self.session.options))
        if result is None:
            self.note(t("chat.set_removed", name=name.lower()))
        else:
            self.note(f"{name.lower()} = {result}")

    def cmd_think(self, arg: str) -> None:
        value = parse_think(arg) if arg else None
        if value is None:
            state = {None: t("chat.think_default"), True: "on", False: "off"}[self.session.think]
            self.note(t("chat.think_current", state=state))
            self.info(t("chat.think_usage"))
            return
        self.session.think = value
        self.transcript.write("think", value=value)
        self.note(t("chat.think_on" if value else "chat.think_off"))

    def cmd_retry(self, arg: str) -> None:
        text = self.session.take_retry()
        if text is None:
            self.hint(t("chat.nothing_to_retry"))
            return
        self.transcript.write("retry", content=text)
        first = text.strip().splitlines()[0] if text.strip() else ""
        self.info(t("chat.retrying", text=first[:60] + ("…" if len(first) > 60 else "")))
        self.send(text)

    def cmd_bye(self, arg: str) -> str:
        return "bye"


def _headers() -> list[str]:
    return [t("chat.col_model"), t("chat.col_params"), t("chat.col_quant"), t("chat.col_size")]


def _options_text(session: ChatSession) -> str:
    parts = [f"{k}={v}" for k, v in session.options.items()]
    if session.think is not None:
        parts.append(f"think={'on' if session.think else 'off'}")
    if session.system:
        parts.append(t("chat.st_system_set"))
    return ", ".join(parts) or t("chat.st_defaults")


# --------------------------------------------------------------------------- start-up


def choose_model(
    wanted: str | None,
    models: list[ModelEntry],
    *,
    ask: Callable[[list[ModelEntry]], str | None] | None,
    out: Console,
) -> str | None:
    """The model to chat with; raises UsageError when it cannot be decided."""
    if wanted:
        name = resolve_model(wanted, models)
        if name is None:
            available = ", ".join(m["name"] for m in models) or t("chat.none")
            raise UsageError(t("chat.model_unknown", model=wanted, available=available))
        return name
    if not models:
        raise UsageError(t("chat.no_models"))
    if len(models) == 1:
        return models[0]["name"]
    if ask is None:
        name = models[0]["name"]
        out.print(Text(t("chat.picked_newest", model=name, count=len(models)), style="dim"))
        return name
    return ask(models)


def _picker(prompt_input: PromptInput, out: Console) -> Callable[[list[ModelEntry]], str | None]:
    def ask(models: list[ModelEntry]) -> str | None:
        out.print(Text(t("chat.pick_title"), style="bold"))
        out.print(model_table(models, current=None, headers=_headers()))
        names = [m["name"] for m in models]
        while True:
            try:
                answer = prompt_input.ask(t("chat.pick_prompt", count=len(models)), names).strip()
            except EOFError:
                return None
            name = names[0] if not answer else None
            if answer.isdigit() and 1 <= int(answer) <= len(names):
                name = names[int(answer) - 1]
            name = name or resolve_model(answer, models)
            if name is not None:
                out.print()
                return name
            out.print(Text(t("chat.pick_again", count=len(models)), style="yellow"))

    return ask


def run_chat(
    settings: Settings, terminal: Terminal, *, model: str | None, system: str | None
) -> int:
    """The interactive (or piped) chat; see the module docstring."""
    interactive = terminal.interactive
    out = terminal.console(stderr=not interactive, soft_wrap=False)
    with OllamaClient(settings, read_timeout_s=settings.benchmark_timeout_s) as client:
        models = client.list_models()
        app_ref: list[ChatApp] = []

        def known_models() -> list[ModelEntry]:
            return app_ref[0].models if app_ref else models

        prompt_input: PromptInput | None = None
        if interactive:
            from ollamakit.chat.prompt import PromptInput

            prompt_input = PromptInput(settings.home / HISTORY_FILE, known_models)
        ask = _picker(prompt_input, out) if prompt_input is not None else None
        chosen = choose_model(model, models, ask=ask, out=out)
        if chosen is None:
            return int(ExitStatus.OK)
        session = ChatSession(model=chosen, system=system)
        transcript = Transcript.create(settings.home, chosen)
        transcript.start(
            server=settings.base_url.redacted(),
            model=chosen,
            system=system,
            options=session.options,
            think=session.think,
        )
        if interactive:

            def view_factory(name: str) -> ReplyView:
                return RichReplyView(out, model=name)

        else:
            stats_out = (
                terminal.console(stderr=True, soft_wrap=False) if terminal.stderr_isatty else None
            )

            def view_factory(name: str) -> ReplyView:
                return PlainReplyView(terminal.stdout.file, terminal.stderr.file, stats_out)

        app = ChatApp(
            settings=settings,
            client=client,
            session=session,
            models=models,
            transcript=transcript,
            out=out,
            view_factory=view_factory,
            terminal=terminal,
        )
        app_ref.append(app)
        status = int(ExitStatus.ERROR)
        try:
            if prompt_input is not None:
                _banner(out, settings, chosen, models, system)
                status = app.run(prompt_input)
            else:
                status = app.run(LineInput(terminal.stdin))
        except KeyboardInterrupt:
            status = int(ExitStatus.INTERRUPTED)
            raise
        except _Terminated as exc:
            status = exc.code if isinstance(exc.code, int) else status
            raise
        finally:
            totals = session.totals
            transcript.write(
                "end",
                replies=totals.replies,
                interrupted=totals.interrupted,
                failed=totals.failed,
                exit_status=status,
            )
            transcript.close()
            with contextlib.suppress(OSError):
                out.print(
                    Text(t("chat.transcript_at", path=str(transcript.path)), style="dim"),
                    soft_wrap=True,  # one line, whatever its length: easy to copy
                )
        return status


def _banner(
    out: Console, settings: Settings, model: str, models: list[ModelEntry], system: str | None
) -> None:
    entry = next((m for m in models if m["name"] == model), None)
    details = (entry or {}).get("details") or {}  # type: ignore[call-overload]
    facts = [
        str(details.get("parameter_size") or ""),
        str(details.get("quantization_level") or ""),
        format_size(entry.get("size")) if entry else "",
    ]
    extra = " ".join(f for f in facts if f and f != "—")
    out.print(
        Text.assemble(
            (model, "bold green"),
            (f" · {extra}" if extra else "", "dim"),
            (f" · {settings.base_url.redacted()}", "dim"),
        )
    )
    if system:
        out.print(Text(t("chat.banner_system", text=system), style="dim"))
    out.print(Text(t("chat.banner_help"), style="dim"))
    out.print()
