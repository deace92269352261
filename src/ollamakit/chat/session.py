"""The conversation as data: what was said, what will be sent, and the session's numbers.

Nothing here does I/O, so every rule of the chat is unit-tested without a server or terminal.

Conversation model
------------------
A :class:`ChatSession` holds the model name, an optional system prompt, the request options
(``/set``), the ``think`` switch and a list of :class:`Turn` — a user message and the
:class:`Reply` it got. The ``messages`` of every ``/api/chat`` request are rebuilt from that
list (:meth:`ChatSession.messages_for`): system prompt first, then each turn, then the new
message; Ollama is stateless, so the whole conversation travels with each request.

What a turn's outcome does to the history:

* complete reply — the turn is kept;
* interrupted (Ctrl-C) with some text — kept, marked ``interrupted``: the user saw that text,
  so the model should know it said it (the next message may well be "go on");
* interrupted before any text, or failed (connection lost, 503, error line) — not kept; the
  message waits in :attr:`ChatSession.pending` so ``/retry`` can send it again.

``/retry`` after a kept turn takes that turn back and sends its message again (a new answer).

The context (:class:`ContextWatch`): each complete reply leaves a :class:`ContextBasis` — its
prompt count and how much of it the next request surely sends back. When the history has only
grown since, a smaller prompt, or a history already past the known context size, means the
server dropped messages from the front (:func:`history_was_cut`).

Input parsing
-------------
:func:`parse_command` splits ``/name argument`` lines (``//text`` sends ``/text`` as a
message); :func:`block_is_open` / :func:`unwrap_block` implement the ``\"\"\"`` multi-line block
for the prompt, and :class:`LineAssembler` does the same line by line for piped input.
"""

from __future__ import annotations

import difflib
import re
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from ollamakit.domain import Think
from ollamakit.measure import format as fmt
from ollamakit.measure.recorder import ReplyMeasurement, rate_per_s
from ollamakit.types import Message, Options

BLOCK_MARK: Final = '"""'

# --------------------------------------------------------------------------- per-reply numbers


@dataclass(frozen=True, slots=True)
class ReplyStats:
    """What the chat shows and records about one reply. A value not known is ``None``.

    Built from the :class:`~ollamakit.measure.ReplyMeasurement` of the reply
    (:meth:`from_measurement`): the same rules as the benchmark, so ``ttft_ms`` is the first
    *answer* text (thinking apart in ``ttft_thinking_ms``) and ``total_ms`` the last chunk's
    arrival. A reply stopped early has no server figures, and its ``total_ms`` is the time
    until it was stopped.
    """

    total_ms: float
    ttft_ms: float | None = None
    chunks: int = 0
    eval_count: int | None = None
    eval_ms: float | None = None
    prompt_eval_count: int | None = None
    load_ms: float | None = None
    done_reason: str | None = None
    ttft_thinking_ms: float | None = None
    decode_tps: float | None = None  # the client's decode rate (measure: tpot)
    buffered: bool = False  # a buffering proxy held the reply: ttft_ms is not a TTFT

    @property
    def eval_tps(self) -> float | None:
        """The server's rate, ``eval_count / eval_duration`` (the recorder's rule)."""
        return rate_per_s(self.eval_count, self.eval_ms)

    @classmethod
    def from_measurement(cls, m: ReplyMeasurement, *, elapsed_ms: float) -> ReplyStats:
        """The chat's view of a measurement; ``elapsed_ms`` (sent → stopped) when it has no end.

        >>> from ollamakit.domain import FinalStats, StreamChunk
        >>> from ollamakit.measure import ReplyRecorder
        >>> r = ReplyRecorder(0)
        >>> r.add(StreamChunk(100_000_000, thinking="hm"))
        >>> r.add(StreamChunk(250_000_000, "Hi"))
        >>> r.add(StreamChunk(2_000_000_000, final=FinalStats("stop", eval_count=10,
        ...     eval_ms=500.0, prompt_eval_count=26)))
        >>> s = ReplyStats.from_measurement(r.finish(), elapsed_ms=2001.0)
        >>> (s.ttft_ms, s.ttft_thinking_ms, s.total_ms, s.eval_count, s.eval_tps, s.done_reason)
        (250.0, 100.0, 2000.0, 10, 20.0, 'stop')
        """
        total_ms = m.total_ms if m.ok and m.total_ms is not None else elapsed_ms
        return cls(
            total_ms=total_ms,
            ttft_ms=m.ttft_ms,
            chunks=m.chunks,
            eval_count=m.eval_count,
            eval_ms=m.eval_ms,
            prompt_eval_count=m.prompt_eval_count,
            load_ms=m.load_ms,
            done_reason=m.done_reason,
            ttft_thinking_ms=m.ttft_thinking_ms,
            decode_tps=m.decode_tps,
            buffered=m.buffered,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with unit-carrying names (for the transcript)."""
        return {
            "ttft_ms": _round(self.ttft_ms),
            "ttft_thinking_ms": _round(self.ttft_thinking_ms),
            "total_ms": _round(self.total_ms),
            "chunks": self.chunks,
            "eval_count": self.eval_count,
            "eval_ms": _round(self.eval_ms),
            "eval_tps": _round(self.eval_tps),
            "decode_tps": _round(self.decode_tps),
            "prompt_eval_count": self.prompt_eval_count,
            "load_ms": _round(self.load_ms),
            "done_reason": self.done_reason,
            "buffered": self.buffered,
        }


format_ms = fmt.ms  # the one ms formatter (measure/format.py)


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class Reply:
    """What the model answered (possibly cut short)."""

    model: str
    content: str = ""
    thinking: str = ""
    interrupted: bool = False
    stats: ReplyStats | None = None


@dataclass(slots=True)
class Turn:
    user: str
    reply: Reply


@dataclass(slots=True)
class Totals:
    """Session totals for ``/stats``."""

    replies: int = 0
    interrupted: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    reply_tokens: int = 0
    eval_ms: float = 0.0
    wall_ms: float = 0.0
    ttfts_ms: list[float] = field(default_factory=list)
    decode_tps: list[float] = field(default_factory=list)  # the client's rate, per reply

    def add(self, reply: Reply) -> None:
        self.replies += 1
        self.interrupted += reply.interrupted
        stats = reply.stats
        if stats is None:
            return
        self.wall_ms += stats.total_ms
        if stats.ttft_ms is not None:
            self.ttfts_ms.append(stats.ttft_ms)
        if stats.decode_tps is not None and not stats.buffered:
            self.decode_tps.append(stats.decode_tps)
        if stats.eval_count is not None and stats.eval_ms:
            self.reply_tokens += stats.eval_count
            self.eval_ms += stats.eval_ms
        if stats.prompt_eval_count is not None:
            self.prompt_tokens += stats.prompt_eval_count

    @property
    def eval_tps(self) -> float | None:
        """The server's rate over all complete replies (sum of counts / sum of durations)."""
        return self.reply_tokens / self.eval_ms * 1000.0 if self.eval_ms else None

    @property
    def median_decode_tps(self) -> float | None:
        """The client's decode rate, median over the replies that had one."""
        return statistics.median(self.decode_tps) if self.decode_tps else None

    @property
    def median_ttft_ms(self) -> float | None:
        return statistics.median(self.ttfts_ms) if self.ttfts_ms else None


# --------------------------------------------------------------------------- the context


@dataclass(frozen=True, slots=True)
class ContextBasis:
    """What one complete reply tells about the next request's prompt, if history only grows.

    ``prompt_tokens`` is its ``prompt_eval_count``; ``resent_tokens`` how many of its own
    tokens the next request surely sends back (:func:`resent_at_least` of its ``eval_count``,
    or 0 when that is not known to be resent: thinking text is not sent back, and a template
    may strip ``<think>`` tags).
    """

    model: str
    system: str | None
    turns: int  # turns in the history once this reply was kept
    prompt_tokens: int  # where the count leaves the cache out: a lower bound
    resent_tokens: int

    @property
    def next_at_least(self) -> int:
        """The next prompt holds at least this many tokens, unless the server cuts it."""
        return self.prompt_tokens + self.resent_tokens


def resent_at_least(eval_count: int) -> int:
    """How many tokens a reply of ``eval_count`` surely adds to the next prompt.

    Less than its count: the count may include an end token, and the reply's text tokenized
    anew can come out a little shorter than the tokens generated. A false "your history was
    cut" would be worse than a cut noticed one turn later.

    >>> resent_at_least(15), resent_at_least(400), resent_at_least(0)
    (13, 379, 0)
    """
    return max(0, eval_count * 95 // 100 - 1)


def history_was_cut(
    basis: ContextBasis, prompt_eval_count: int, *, num_ctx: int | None, counts_cached: bool
) -> bool:
    """Whether the server dropped messages from the front of this request's history.

    Ollama cuts a chat that does not fit ``num_ctx`` without a word (``server/prompt.go``):
    whole messages from the front, the system prompt and the latest message kept. Two signs,
    each certain (history only grew since ``basis``):

    * the prompt is smaller than the previous prompt plus the previous reply, which it holds
      (not usable when the count leaves cached tokens out: ``counts_cached`` false, 0.30.0);
    * the previous prompt plus the previous reply alone exceed the known context size.

    >>> b = ContextBasis("m", None, turns=2, prompt_tokens=50, resent_tokens=30)
    >>> history_was_cut(b, 90, num_ctx=None, counts_cached=True)
    False
    >>> history_was_cut(b, 60, num_ctx=None, counts_cached=True)
    True
    >>> history_was_cut(b, 12, num_ctx=None, counts_cached=False)
    False
    >>> history_was_cut(b, 12, num_ctx=64, counts_cached=False)
    True
    """
    if counts_cached and prompt_eval_count < basis.next_at_least:
        return True
    return num_ctx is not None and basis.next_at_least > num_ctx


@dataclass(slots=True)
class ContextWatch:
    """The session's view of the server's context: its size when known, what the last
    reply filled, and the cuts seen (``/stats``)."""

    num_ctx: int | None = None  # /api/ps context_length, or the num_ctx option
    used_tokens: int | None = None  # the last reply's prompt + reply tokens
    cuts: int = 0
    last_cut: bool = False  # the last reply's history was cut
    basis: ContextBasis | None = None

    def reset(self) -> None:
        """The history started again (``/clear``): earlier cuts no longer matter."""
        self.basis = None
        self.cuts = 0
        self.last_cut = False
        self.used_tokens = None


# --------------------------------------------------------------------------- options (/set)

#: What ``/set`` accepts (the options people actually tune in a chat).
OPTION_NAMES: Final = ("temperature", "top_p", "num_ctx", "seed")


class OptionError(ValueError):
    """A ``/set`` value is invalid; ``key`` names the message, ``params`` fill it."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


def parse_option(name: str, raw: str) -> float | int:
    """Validate one ``/set NAME VALUE``.

    >>> parse_option("temperature", "0.7")
    0.7
    >>> parse_option("num_ctx", "8192")
    8192
    >>> parse_option("seed", "-1")
    -1
    >>> parse_option("top_p", "1.5")
    Traceback (most recent call last):
    ...
    ollamakit.chat.session.OptionError: chat.set_range
    >>> parse_option("num_ctx", "4k")
    Traceback (most recent call last):
    ...
    ollamakit.chat.session.OptionError: chat.set_int
    """
    if name not in OPTION_NAMES:
        raise OptionError("chat.set_unknown", name=name, names=", ".join(OPTION_NAMES))
    if name in ("num_ctx", "seed"):
        try:
            number = int(raw)
        except ValueError:
            raise OptionError("chat.set_int", name=name, value=raw) from None
        if name == "num_ctx" and number < 1:
            raise OptionError("chat.set_range", name=name, value=raw, range="≥ 1")
        return number
    try:
        value = float(raw)
    except ValueError:
        raise OptionError("chat.set_float", name=name, value=raw) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise OptionError("chat.set_float", name=name, value=raw)
    if name == "temperature" and not 0.0 <= value <= 2.0:
        raise OptionError("chat.set_range", name=name, value=raw, range="0 – 2")
    if name == "top_p" and not 0.0 < value <= 1.0:
        raise OptionError("chat.set_range", name=name, value=raw, range="0 < top_p ≤ 1")
    return value


# --------------------------------------------------------------------------- the session


@dataclass
class ChatSession:
    """One conversation with one model at a time (``/model`` switches and keeps the history)."""

    model: str
    system: str | None = None
    options: dict[str, float | int] = field(default_factory=dict)
    think: Think | None = None  # None: not sent (the model's default); a level since /think low
    turns: list[Turn] = field(default_factory=list)
    pending: str | None = None  # a message that got no (usable) reply: what /retry sends
    totals: Totals = field(default_factory=Totals)
    context: ContextWatch = field(default_factory=ContextWatch)
    started_at: datetime = field(default_factory=lambda: datetime.now().astimezone())
    # (number of turns before it, text) for each system prompt, for the Markdown export: a
    # prompt set mid-chat is shown where it was set, not as if it applied from the start
    system_changes: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.system and not self.system_changes:
            self.system_changes.append((0, self.system))

    def set_system(self, text: str) -> None:
        """``/system TEXT``: used by every later request; remembered where it was set.

        >>> s = ChatSession("m", system="A")
        >>> s.record("Hi", Reply("m", "Hello"))
        >>> s.set_system("B"); s.set_system("C")
        >>> s.system, s.system_changes
        ('C', [(0, 'A'), (1, 'C')])
        """
        self.system = text
        at = len(self.turns)
        if self.system_changes and self.system_changes[-1][0] == at:
            self.system_changes[-1] = (at, text)  # replaced before anything was said
        else:
            self.system_changes.append((at, text))

    # -- what is sent

    def messages_for(self, text: str) -> list[Message]:
        """The ``messages`` of the request that sends ``text``: system, history, ``text``.

        >>> s = ChatSession("m", system="Be brief.")
        >>> s.record("Hi", Reply("m", "Hello!"))
        >>> [m["role"] for m in s.messages_for("And you?")]
        ['system', 'user', 'assistant', 'user']
        """
        messages: list[Message] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        for turn in self.turns:
            messages.append({"role": "user", "content": turn.user})
            messages.append({"role": "assistant", "content": turn.reply.content})
        messages.append({"role": "user", "content": text})
        return messages

    def request_options(self) -> Options | None:
        return cast(Options, dict(self.options)) if self.options else None

    # -- outcomes

    def record(self, text: str, reply: Reply, *, counts_cached: bool = True) -> None:
        """A reply came (complete, or interrupted): keep the turn unless it has no text.

        ``context.last_cut`` says whether its numbers show that the server cut the history to
        fit its context (:func:`history_was_cut`; ``counts_cached`` false where
        ``prompt_eval_count`` leaves the cached prefix out).

        >>> s = ChatSession("m")
        >>> s.context.num_ctx = 64
        >>> def reply(prompt, tokens):
        ...     return Reply("m", "x", stats=ReplyStats(total_ms=1.0, eval_count=tokens,
        ...                  eval_ms=1.0, prompt_eval_count=prompt))
        >>> s.record("a", reply(20, 20)); s.record("b", reply(42, 20)); s.context.last_cut
        False
        >>> s.record("c", reply(41, 5)); s.context.last_cut, s.context.cuts, s.context.used_tokens
        (True, 1, 46)
        """
        self.totals.add(reply)
        basis = self.context.basis
        cut = False
        stats = reply.stats
        prompt = stats.prompt_eval_count if stats is not None else None
        same = basis is not None and (basis.model, basis.system, basis.turns) == (
            self.model,
            self.system,
            len(self.turns),
        )  # the history only grew since that reply: its numbers bound this one's
        if basis is not None and same and prompt is not None:
            cut = history_was_cut(
                basis, prompt, num_ctx=self.context.num_ctx, counts_cached=counts_cached
            )
            self.context.cuts += cut
        self.context.last_cut = cut
        if reply.interrupted and not reply.content.strip():
            self.pending = text
            return
        self.turns.append(Turn(text, reply))
        self.pending = None
        self.context.basis = None
        if stats is not None and prompt is not None and stats.eval_count is not None:
            if not counts_cached and basis is not None and same and not cut:
                # the count left the cached prefix out: the prompt is at least what the
                # previous one and its reply were (the history only grew, nothing was cut)
                prompt = max(prompt, basis.next_at_least)
            self.context.used_tokens = prompt + stats.eval_count
            if not reply.interrupted:
                resent = not reply.thinking and "<think>" not in reply.content
                self.context.basis = ContextBasis(
                    self.model,
                    self.system,
                    len(self.turns),
                    prompt,
                    resent_at_least(stats.eval_count) if resent else 0,
                )

    def record_failure(self, text: str) -> None:
        """The request failed: nothing is added; the message waits for ``/retry``."""
        self.totals.failed += 1
        self.pending = text

    def take_retry(self) -> str | None:
        """The message ``/retry`` sends; a kept turn is taken back first (to be answered anew).

        >>> s = ChatSession("m")
        >>> s.record_failure("Hi")
        >>> s.take_retry()
        'Hi'
        >>> s.record("Hi", Reply("m", "Hello"))
        >>> (s.take_retry(), len(s.turns))
        ('Hi', 0)
        >>> ChatSession("m").take_retry() is None
        True
        """
        if self.pending is not None:
            return self.pending
        if self.turns:
            return self.turns.pop().user
        return None

    def clear(self) -> None:
        """Forget the conversation; keep model, system prompt and options."""
        self.turns.clear()
        self.pending = None
        self.context.reset()
        self.system_changes = [(0, self.system)] if self.system else []

    def set_option(self, name: str, raw: str) -> float | int | None:
        """``/set NAME VALUE``; ``off``/``default`` removes the option (server default)."""
        if name in OPTION_NAMES and raw.lower() in ("off", "default", "unset"):
            self.options.pop(name, None)
            return None
        value = parse_option(name, raw)
        self.options[name] = value
        return value

    # -- export

    def to_markdown(self, *, server: str, title: str, you: str, interrupted: str) -> str:
        """A readable Markdown transcript for ``/save``.

        >>> s = ChatSession("llama3.2", system="Be brief.")
        >>> s.started_at = datetime(2026, 1, 2, 3, 4, 5)
        >>> s.record("Hi", Reply("llama3.2", "Hello!", interrupted=True))
        >>> print(s.to_markdown(server="http://h", title="Chat", you="You", interrupted="cut"))
        # Chat
        <BLANKLINE>
        - model: `llama3.2`
        - server: http://h
        - started: 2026-01-02 03:04:05
        <BLANKLINE>
        > **system:** Be brief.
        <BLANKLINE>
        ## You
        <BLANKLINE>
        Hi
        <BLANKLINE>
        ## llama3.2
        <BLANKLINE>
        Hello!
        <BLANKLINE>
        *(cut)*
        <BLANKLINE>
        """
        out = [
            f"# {title}",
            "",
            f"- model: `{self.model}`",
            f"- server: {server}",
            f"- started: {self.started_at:%Y-%m-%d %H:%M:%S}",
            "",
        ]
        # a prompt set after turn n is shown before turn n + 1 (a /retry may have taken turns
        # back: such a prompt then shows after the last turn kept)
        changes: dict[int, str] = {}
        for at, prompt in self.system_changes:
            changes[min(at, len(self.turns))] = prompt
        for index, turn in enumerate([*self.turns, None]):
            if index in changes:
                out += [f"> **system:** {changes[index]}", ""]
            if turn is None:
                break
            reply = turn.reply
            out += [f"## {you}", "", _user_markdown(turn.user), "", f"## {reply.model}", ""]
            if reply.thinking.strip():
                quoted = "\n".join(
                    f"> {line}".rstrip() for line in reply.thinking.strip().split("\n")
                )
                out += ["<details><summary>thinking</summary>", "", quoted, "", "</details>", ""]
            out += [reply.content.strip(), ""]
            if reply.interrupted:
                out += [f"*({interrupted})*", ""]
        return "\n".join(out)


def _user_markdown(text: str) -> str:
    """A user message for the Markdown export: one line as it is, several lines fenced.

    Markdown joins single line breaks, and a pasted snippet should stay verbatim.

    >>> _user_markdown("Hi")
    'Hi'
    >>> print(_user_markdown("a\\n```b```"))
    ````text
    a
    ```b```
    ````
    """
    text = text.strip("\n")
    if "\n" not in text:
        return text.strip()
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


# --------------------------------------------------------------------------- input parsing


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    usage: str  # shown in /help after the name, e.g. "NAME"
    help_key: str
    aliases: tuple[str, ...] = ()


COMMANDS: Final = (
    CommandSpec("help", "", "chat.cmd_help", ("?",)),
    CommandSpec("models", "", "chat.cmd_models"),
    CommandSpec("model", "NAME", "chat.cmd_model"),
    CommandSpec("system", "TEXT", "chat.cmd_system"),
    CommandSpec("clear", "", "chat.cmd_clear"),
    CommandSpec("save", "FILE", "chat.cmd_save"),
    CommandSpec("stats", "", "chat.cmd_stats"),
    CommandSpec("set", "NAME VALUE", "chat.cmd_set"),
    CommandSpec("think", "on|off|low|medium|high|max", "chat.cmd_think"),
    CommandSpec("retry", "", "chat.cmd_retry"),
    CommandSpec("bye", "", "chat.cmd_bye", ("exit", "quit")),
)

_BY_NAME: Final = {alias: c for c in COMMANDS for alias in (c.name, *c.aliases)}
_FORCEABLE: Final = frozenset({"save"})  # ``/save!``: overwrite an existing file


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed slash command. ``spec`` is None for an unknown name (``suggestion`` may help)."""

    name: str
    arg: str
    spec: CommandSpec | None
    suggestion: str | None = None
    force: bool = False  # ``/save! FILE``: overwrite without asking


def parse_command(line: str) -> Command | None:
    """A ``/command argument`` line, or None when the line is a message.

    >>> parse_command("/model  qwen3:8b ")
    Command(name='model', arg='qwen3:8b', spec=CommandSpec(name='model', ...), ...)
    >>> parse_command("/save! chat.md").force, parse_command("/save! chat.md").spec.name
    (True, 'save')
    >>> parse_command("/?").spec.name
    'help'
    >>> parse_command("/modle x").suggestion
    'model'
    >>> parse_command("hello") is None, parse_command("//etc/hosts is a file") is None
    (True, True)
    """
    stripped = line.strip()
    if not stripped.startswith("/") or stripped.startswith("//") or "\n" in stripped:
        return None  # a message (commands are one line; a pasted block is always a message)
    head, _, arg = stripped[1:].partition(" ")
    name = head.lower()
    force = name.endswith("!") and name[:-1] in _FORCEABLE
    spec = _BY_NAME.get(name[:-1] if force else name)
    suggestion = None
    if spec is None:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=1, cutoff=0.6)
        suggestion = _BY_NAME[close[0]].name if close else None
    return Command(name, arg.strip(), spec, suggestion, force)


def message_text(line: str) -> str:
    """The message a non-command line sends: ``//x`` is the escape for a leading slash.

    >>> message_text("//etc/hosts")
    '/etc/hosts'
    >>> message_text("  hi  ")
    'hi'
    """
    text = line.strip()
    return text[1:] if text.startswith("//") else text


def block_is_open(text: str) -> bool:
    """Whether a ``\"\"\"`` block has been opened and not yet closed (Enter adds a line).

    >>> block_is_open('\"\"\"'), block_is_open('\"\"\"a\\nb'), block_is_open('\"\"\"a\\nb\"\"\"')
    (True, True, False)
    >>> block_is_open('\"\"\"one line\"\"\"'), block_is_open("plain")
    (False, False)
    """
    body = text.strip()
    if not body.startswith(BLOCK_MARK):
        return False
    return not (len(body) >= 2 * len(BLOCK_MARK) and body.endswith(BLOCK_MARK))


def unwrap_block(text: str) -> str:
    """The message inside a ``\"\"\"`` block (markers and the lines they sit on removed).

    >>> unwrap_block('\"\"\"\\nline 1\\n  line 2\\n\"\"\"')
    'line 1\\n  line 2'
    >>> unwrap_block('\"\"\"inline\"\"\"')
    'inline'
    >>> unwrap_block("no block")
    'no block'
    """
    body = text.strip()
    if not body.startswith(BLOCK_MARK):
        return text
    body = body[len(BLOCK_MARK) :]
    if body.endswith(BLOCK_MARK):
        body = body[: -len(BLOCK_MARK)]
    return body.strip("\n").rstrip()


class LineAssembler:
    """Turns input lines into messages, joining ``\"\"\"`` blocks (piped input).

    >>> a = LineAssembler()
    >>> [a.feed(x) for x in ['hi', '\"\"\"', 'a', 'b\"\"\"', '']]
    ['hi', None, None, 'a\\nb', None]
    >>> a.feed('\"\"\"open'), a.flush()
    (None, 'open')
    """

    def __init__(self) -> None:
        self._lines: list[str] | None = None

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if self._lines is None:
            if not line.strip():
                return None
            if line.strip().startswith(BLOCK_MARK) and block_is_open(line):
                self._lines = [line]
                return None
            return unwrap_block(line) if line.strip().startswith(BLOCK_MARK) else line
        self._lines.append(line)
        text = "\n".join(self._lines)
        if block_is_open(text):
            return None
        self._lines = None
        return unwrap_block(text)

    def flush(self) -> str | None:
        """At end of input: an unclosed block is sent as it is."""
        if self._lines is None:
            return None
        text, self._lines = "\n".join(self._lines), None
        body = unwrap_block(text + "\n" + BLOCK_MARK)
        return body or None
