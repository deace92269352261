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

A history that no longer fits
-----------------------------
Ollama cuts a chat longer than ``num_ctx`` from the front without a word. After each reply the
session compares its ``prompt_eval_count`` with what the history held
(:func:`~ollamakit.chat.session.history_was_cut`); the context size comes from ``/set
num_ctx`` or, asked once per model after its first reply, ``/api/ps`` ``context_length``. A cut
is said once with the fix (``/clear``, ``/set num_ctx N``), later ones in a short line; the
transcript records each (``context_cut``) and ``/stats`` shows how full the context is.

Errors mid-chat print the same message and fix as ``doctor`` (``✘`` what happened, ``→`` what
to do; word-wrapped on a terminal, :meth:`Terminal.print_error` otherwise) and the session goes
on; the message waits for ``/retry``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
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

from ollamakit.chat.backend import ChatClient, open_chat_client
from ollamakit.chat.models import (
    catalog_for,
    format_size,
    info_of,
    infos,
    match_model,
    model_table,
    resolve_model,
)
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
)
from ollamakit.chat.transcript import Transcript
from ollamakit.client import Chunk, identity_line
from ollamakit.config import Settings
from ollamakit.domain import StreamEnd
from ollamakit.errors import ConnectFailed, ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.measure.recorder import ReplyRecorder
from ollamakit.selection import (
    Catalog,
    SelectionError,
    can_think,
    check_think_version,
    classify,
    kind_of,
    levels_only,
    parse_think_mode,
    parse_version,
    think_for,
    unknown_model,
)
from ollamakit.types import ModelEntry
from ollamakit.ui.tables import print_table
from ollamakit.ui.terminal import Terminal

if TYPE_CHECKING:
    from ollamakit.chat.prompt import PromptInput

HISTORY_FILE: Final = "chat_history"
#: Silence (no token) after which the chat says what may be going on; at most half the timeout.
SLOW_AFTER_S: Final = 10.0


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


class SlowReplyWatch:
    """Says what may be going on when a reply stays silent (no token) for a while.

    A thread started with the request; :meth:`touch` on every chunk re-arms it. After
    ``after_s`` of silence it asks ``/api/ps`` (on a connection of its own: the streaming one
    is busy) whether the server lists the model. Ollama lists a model from the moment it starts
    loading, so: not listed, the request waits its turn (a queue, memory to free); listed, it is
    loading or busy with others. One sentence goes to ``say``, once per silence.
    The read timeout (``--timeout``) still ends the wait; this only explains it.
    """

    def __init__(
        self,
        *,
        after_s: float,
        loaded: Callable[[], bool | None],
        say: Callable[[str], None],
        model: str,
        timeout_s: float,
    ) -> None:
        self._after_s = after_s
        self._loaded = loaded
        self._say = say
        self._model = model
        self._timeout_s = timeout_s
        self._last = time.monotonic()
        self._warned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-slow", daemon=True)

    def __enter__(self) -> SlowReplyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def touch(self) -> None:
        self._last, self._warned = time.monotonic(), False

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            silent_s = time.monotonic() - self._last
            if self._warned or silent_s < self._after_s:
                continue
            self._warned = True
            loaded = self._loaded()
            if self._stop.is_set():
                return
            key = {
                None: "chat.slow_unknown",
                True: "chat.slow_listed",
                False: "chat.slow_not_listed",
            }
            self._say(
                t(
                    key[loaded],
                    model=self._model,
                    seconds=f"{silent_s:.0f}",
                    timeout=f"{self._timeout_s:g}",
                )
            )


# --------------------------------------------------------------------------- the app


class ChatApp:
    """One chat session: commands, requests, transcript. Returns an exit status from :meth:`run`."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: ChatClient,
        session: ChatSession,
        models: list[ModelEntry],
        transcript: Transcript,
        out: Console,
        view_factory: Callable[[str], ReplyView],
        terminal: Terminal | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.catalog = catalog  # /api/show answers, asked once per model (selection.py)
        self._server_version: str | None = None
        self._ctx_sizes: dict[str, int | None] = {}  # /api/ps context_length per model
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
        self.source: Input | None = None

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
            terminal = self.terminal or Terminal.from_env()
            terminal.print_error(exc)
            if isinstance(exc, ConnectFailed):  # the server went away: the doctor says why
                terminal.info(t("errors.see_doctor"))
            return
        self.out.print(Text(f"✘ {exc.message}", style="bold red"))
        for line in (exc.hint or "").splitlines():
            if line.startswith("    "):  # a command to copy: whole, on its own line, no arrow
                self.out.print(Text("    " + line.strip(), style="bold"), soft_wrap=True)
                continue
            self.out.print(Padding(Text.assemble(("→ ", "cyan"), line), (0, 0, 0, 2)))
        if isinstance(exc, ConnectFailed):  # the server went away: the doctor says why
            self.info(t("errors.see_doctor"))

    # -- the loop

    def run(self, source: Input) -> int:
        self.interactive = source.interactive
        self.source = source
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
        watch = SlowReplyWatch(
            after_s=min(SLOW_AFTER_S, self.settings.chat_timeout_s / 2),
            loaded=lambda: self._model_loaded(session.model),
            say=view.slow,
            model=session.model,
            timeout_s=self.settings.chat_timeout_s,
        )
        with guard.active():
            try:
                with quiet_tty() if self.interactive else contextlib.nullcontext(), watch:
                    view.start()
                    with self.client.stream_chat(
                        session.model,
                        messages,
                        options=session.request_options(),
                        think=session.think,
                    ) as stream:
                        collected.start(stream.sent_ns)
                        for chunk in stream:
                            watch.touch()
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

    def _model_loaded(self, model: str) -> bool | None:
        """Whether ``/api/ps`` lists ``model`` (None: it could not be asked in a few seconds)."""
        try:
            with open_chat_client(self.settings, read_timeout_s=5.0, deadline_s=5.0) as probe:
                running = probe.running_models()
        except OllamakitError:
            return None
        if running is None:  # an OpenAI-compatible server has no /api/ps
            return None
        return any(m.model == model for m in running)

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
            session.context.num_ctx = self._context_size()
            session.record(text, reply, counts_cached=self._counts_cached())
        # 2. the screen
        view.finish(outcome, stats)
        if error is not None:
            self.error(error)
            if self.interactive:
                self.hint(t("chat.kept_for_retry"))
        elif outcome == "interrupted" and session.pending is not None and self.interactive:
            self.hint(t("chat.kept_for_retry"))
        if error is None and session.context.last_cut:
            self._say_cut()
        if outcome == "done" and error is None:
            self._learn_context_size()

    # -- the server's context (Ollama cuts a long history silently: say so)

    def _counts_cached(self) -> bool:
        """Whether ``prompt_eval_count`` includes the cached prefix (all but Ollama 0.30.0)."""
        identity = getattr(self.client, "identity", None)  # any client with stream_chat works
        if identity is None:
            return True
        return not (identity.api == "ollama" and parse_version(identity.version) == (0, 30, 0))

    def _context_size(self) -> int | None:
        """The context the model runs with: ``/set num_ctx``, else what ``/api/ps`` said."""
        wanted = self.session.options.get("num_ctx")
        if isinstance(wanted, int):
            return wanted
        return self._ctx_sizes.get(self.session.model)

    def _learn_context_size(self) -> None:
        """Ask ``/api/ps`` once per model for its ``context_length`` (after a reply: loaded)."""
        model = self.session.model
        if "num_ctx" in self.session.options or model in self._ctx_sizes:
            return
        size: int | None = None
        try:
            running = self.client.running_models()
        except OllamakitError:
            running = None
        for entry in running or ():  # Residency (ChatClient); other clients' entries: skipped
            context_length = getattr(entry, "context_length", None)
            if getattr(entry, "model", None) == model and isinstance(context_length, int):
                size = context_length or None
        self._ctx_sizes[model] = size
        self.session.context.num_ctx = self._context_size()

    def _say_cut(self) -> None:
        context = self.session.context
        self.transcript.write("context_cut", cuts=context.cuts, num_ctx=context.num_ctx)
        if context.cuts > 1:
            self.hint(t("chat.context_cut_again", cuts=context.cuts))
            return
        size = context.num_ctx
        suggest = f"{max(2 * (size or 4096), 8192):d}"
        if size:
            self.hint(t("chat.context_cut", num_ctx=size, suggest=suggest))
        else:
            self.hint(t("chat.context_cut_unknown", suggest=suggest))

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
        if command.spec.name == "save":
            self.cmd_save(command.arg, force=command.force)
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
        self.info(t("chat.models_legend"))

    def cmd_model(self, arg: str) -> None:
        if not arg:
            self.note(t("chat.model_current", model=self.session.model))
            self.info(t("chat.model_usage"))
            return
        if not self._refresh_models():
            return
        match = match_model(_numbered(arg, self.models), self.models)
        if match is None:
            self.hint(t("chat.model_not_here", model=arg))
            return
        name = match.name
        if match.expanded:
            self.info(t("select.expanded", wanted=arg, model=name))
        info = info_of(name, self.models, self.catalog)
        if kind_of(info) == "embedding":
            self.hint(t("select.cannot_chat", model=name))
            return
        if kind_of(info) == "cloud":
            self.info(t("select.cloud_named", model=name))
        if self.session.think not in (None, False) and can_think(info) is False:
            self.session.think = None  # a thinking request to this model would be a 400
            self.info(t("select.think_reset", model=name))
        self.session.model = name
        self.transcript.write("model", model=name)
        self.note(t("chat.model_switched", model=name, turns=len(self.session.turns)))

    def cmd_system(self, arg: str) -> None:
        if not arg:
            current = self.session.system
            self.note(t("chat.system_current", text=current) if current else t("chat.system_none"))
            return
        self.session.set_system(arg)
        self.transcript.write("system", content=arg)
        self.note(t("chat.system_set"))

    def cmd_clear(self, arg: str) -> None:
        self.session.clear()
        self.transcript.write("clear")
        self.note(t("chat.cleared"))

    def _confirm(self, question: str) -> bool:
        """A yes/no question at the prompt (interactive only); anything but yes is no."""
        ask = getattr(self.source, "ask", None)
        if not self.interactive or ask is None:
            return False
        try:
            answer = str(ask(f"{question} ", ["y", "n"]))
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in {"y", "yes", "是", "對"}

    def cmd_save(self, arg: str, *, force: bool = False) -> None:
        if not arg:
            self.hint(t("chat.save_usage"))
            return
        path = Path(arg).expanduser()
        if path.exists() and not force:
            if path.is_dir():
                self.hint(t("chat.save_failed", path=str(path), error=t("chat.save_is_dir")))
                return
            # Interactive: ask. Piped: never overwrite silently; ``/save!`` says it is wanted.
            if not self.interactive:
                self.hint(t("chat.save_exists_piped", path=str(path)))
                return
            if not self._confirm(t("chat.save_overwrite", path=path.name)):  # path just typed
                self.info(t("chat.save_kept", path=str(path)))
                return
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
        turns = len(self.session.turns)
        self.note(t("chat.saved_one" if turns == 1 else "chat.saved", path=str(path), turns=turns))

    def cmd_stats(self, arg: str) -> None:
        session, totals = self.session, self.session.totals
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
            (t("chat.st_eval_rate"), fmt.tps(tps)),
        ]
        decode = totals.median_decode_tps
        if decode is not None:  # no decode rate: no row (never the server's under its name)
            rows.append((t("chat.st_decode"), fmt.tps(decode)))
        rows += [
            (t("chat.st_ttft"), format_ms(totals.median_ttft_ms)),
            (t("chat.st_time"), format_ms(totals.wall_ms)),
            (t("chat.st_context"), _context_text(session)),
            (t("chat.st_options"), _options_text(session)),
        ]
        path = str(self.transcript.path)
        labels = [label for label, _ in rows] + [t("chat.st_transcript")]
        # The path in one piece, to copy: in the table when it fits on the line, else on a
        # line of its own (where a terminal soft-wraps it, which copies as one line).
        label_width = max(map(cell_len, labels))
        inline = label_width + 2 + cell_len(path) <= self.out.width
        table = Table(box=None, show_header=False, pad_edge=False)
        # Labels whole (rich would otherwise shrink them to "exchanges…" when a value is long):
        # the values fold instead, unless the screen is too narrow for even that.
        table.add_column(style="dim", no_wrap=True, min_width=min(label_width, self.out.width // 2))
        table.add_column(overflow="fold")
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

    def _version(self) -> str | None:
        """The server's version, asked once (``/think`` levels depend on it)."""
        if self._server_version is None:
            try:
                self._server_version = self.client.identity.version or self.client.connect().version
            except OllamakitError:
                return None
        return self._server_version

    def cmd_think(self, arg: str) -> None:
        """``/think on|off|low|medium|high|max``, checked against the model and the server
        before anything is sent: a model that cannot think, gpt-oss and ``off``, a level
        this Ollama version would answer with a 400 (selection.py) each get a message."""
        mode = parse_think_mode(arg) if arg else None
        if mode is None:
            current = self.session.think
            state = (
                t("chat.think_default")
                if current is None
                else current
                if isinstance(current, str)
                else "on"
                if current
                else "off"
            )
            self.note(t("chat.think_current", state=state))
            self.info(t("select.think_usage"))
            return
        model = self.session.model
        info = info_of(model, self.models, self.catalog)
        if mode != "off" and can_think(info) is False:
            self.hint(t("select.think_cannot", model=model))
            return
        if mode == "off" and levels_only(info):
            self.hint(t("select.think_cannot_off_chat", model=model))
            return
        try:
            check_think_version(mode, self._version(), any_plain=not levels_only(info))
        except SelectionError as exc:
            self.hint(exc.message)
            if exc.hint:
                self.info(exc.hint)
            return
        value = think_for(info, mode).value
        self.session.think = value
        self.transcript.write("think", value=value)
        if isinstance(value, str):
            self.note(t("select.think_level", level=value))
        else:
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


def _numbered(arg: str, models: list[ModelEntry]) -> str:
    """``/model 2``: the name numbered 2 in ``/models`` and the start picker; else ``arg``.

    >>> ms = [{"name": "a:1b"}, {"name": "b:2b"}]
    >>> _numbered("2", ms), _numbered("3", ms), _numbered("b", ms)
    ('b:2b', '3', 'b')
    """
    number = arg.strip()
    if number.isdigit() and 1 <= int(number) <= len(models):
        return models[int(number) - 1]["name"]
    return arg


def _headers() -> list[str]:
    return [t("chat.col_model"), t("chat.col_params"), t("chat.col_quant"), t("chat.col_size")]


def _context_text(session: ChatSession) -> str:
    """How full the context was after the last reply, and the cuts seen (``/stats``)."""
    context = session.context
    if context.used_tokens is None:
        text = "—"
    elif context.num_ctx:
        text = t(
            "chat.st_context_value", used=f"{context.used_tokens:,}", size=f"{context.num_ctx:,}"
        )
    else:
        text = t("chat.st_context_value_unknown", used=f"{context.used_tokens:,}")
    if context.cuts:
        text += t("chat.st_context_cut", cuts=context.cuts)
    return text


def _options_text(session: ChatSession) -> str:
    parts = [f"{k}={v}" for k, v in session.options.items()]
    if session.think is not None:
        think = session.think
        parts.append(f"think={think if isinstance(think, str) else 'on' if think else 'off'}")
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
    catalog: Catalog | None = None,
    server: str = "",
) -> str | None:
    """The model to chat with; raises UsageError (exit 2) when it cannot be decided.

    A typed name follows the one matching rule (an expansion is said in one line); an
    embedding model cannot chat. Without a name, embedding and cloud models are left out of
    the choice, each with a one-line notice (selection.py).
    """
    if wanted:
        match = match_model(wanted, models)
        if match is None:
            raise unknown_model(wanted, [m["name"] for m in models])
        if match.expanded:
            out.print(Text(t("select.expanded", wanted=wanted, model=match.name), style="dim"))
        kind = kind_of(info_of(match.name, models, catalog))
        if kind == "embedding":
            raise SelectionError(
                t("select.cannot_chat", model=match.name), t("select.cannot_chat_hint")
            )
        if kind == "cloud":
            out.print(Text(t("select.cloud_named", model=match.name), style="dim"))
        return match.name
    if not models:
        raise UsageError(t("chat.no_models"))
    listed = infos(models)
    kept, skipped = classify(
        catalog.complete(listed) if catalog is not None else listed, [False] * len(listed)
    )
    for skip in skipped:
        out.print(Text(skip.notice(), style="dim"))
    usable = [m for m in models if m["name"] in {k.name for k in kept}]
    if not usable:
        raise SelectionError(
            t("select.no_chat_models", url=server, skipped=", ".join(s.name for s in skipped)),
            t("select.no_chat_models_hint"),
        )
    if len(usable) == 1:
        return usable[0]["name"]
    if ask is None:
        name = usable[0]["name"]
        out.print(Text(t("chat.picked_newest", model=name, count=len(usable)), style="dim"))
        return name
    return ask(usable)


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
    settings: Settings,
    terminal: Terminal,
    *,
    model: str | None,
    system: str | None,
    think: str | None = None,
) -> int:
    """The interactive (or piped) chat; see the module docstring."""
    interactive = terminal.interactive
    out = terminal.console(stderr=not interactive, soft_wrap=False)
    # The read timeout is the longest silence a reply may have (--timeout, CHAT_TIMEOUT_SECONDS).
    # Piped, every request (the model list, each reply) also ends within a total deadline; at
    # a terminal Ctrl-C stops a reply, and a long one must not be cut.
    with open_chat_client(
        settings,
        read_timeout_s=settings.chat_timeout_s,
        deadline_s=None if interactive else settings.benchmark_timeout_s,
        deadline_setting="BENCHMARK_TIMEOUT_SECONDS",
    ) as client:
        terminal.info(identity_line(client.connect(), settings.base_url.redacted()))
        models = client.list_models()
        app_ref: list[ChatApp] = []

        def known_models() -> list[ModelEntry]:
            return app_ref[0].models if app_ref else models

        prompt_input: PromptInput | None = None
        if interactive:
            from ollamakit.chat.prompt import PromptInput

            prompt_input = PromptInput(settings.home / HISTORY_FILE, known_models)
        ask = _picker(prompt_input, out) if prompt_input is not None else None
        catalog = catalog_for(client)
        chosen = choose_model(
            model, models, ask=ask, out=out, catalog=catalog, server=settings.base_url.redacted()
        )
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
            catalog=catalog,
        )
        app_ref.append(app)
        if think is not None:  # --think: as /think MODE before the first message
            if parse_think_mode(think) is None:
                raise UsageError(t("select.bad_think", value=think))
            app.cmd_think(think)
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
