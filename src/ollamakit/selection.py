"""Which models to use, the same way in bench, chat, ``chat --auto`` and the doctor.

Design
------
Every tool turns what the user typed (``--model``, ``/model``, ``--exclude``) and the server's
list into the models it will talk to with the same rules, so a name that works in one tool
works in all of them, and a server with an embedding or a cloud model is treated the same way
everywhere (issue 9, items 1–3).

Matching a typed name (:func:`resolve`), in this order:

1. the exact name, then ``NAME:latest`` (Ollama's own rule: no tag means ``latest``);
2. the same, ignoring case;
3. a unique prefix (``llama3`` → ``llama3.2:3b`` when only one name starts with it): this is
   an *expansion*, and the tools say so in one line (:attr:`Match.expanded`).

A pattern with ``*``, ``?`` or ``[`` is a glob (:func:`is_glob`), matched case-insensitively
against the full name and against the name without ``:latest`` (``qwen*``, ``*:7b``).
``--exclude`` takes the same patterns; a plain name there excludes what it would resolve to.

What a model is (:func:`kind_of`): ``"cloud"`` when the list says ``remote_host`` /
``remote_model``, or when a ``…cloud`` tag has a size of a few hundred bytes (a manifest,
not weights: inference goes to ollama.com); ``"embedding"`` when its capabilities lack
``completion`` (or, when they are unknown, when the name or family says ``embed``/``bert``);
else ``"chat"``. Capabilities come
from ``/api/tags`` on Ollama ≥ 0.30 and from ``/api/show`` (every 0.12+) otherwise:
:class:`AsyncCatalog`/:class:`Catalog` ask ``/api/show`` once per model and run (concurrently
for many models) and keep the answers.

Thinking (:func:`think_plan`): what ``think`` value to send for a requested mode
(``off|on|low|medium|high|max``), given the model and the server version. gpt-oss cannot turn
thinking off (``think: false`` is ignored), so "off" becomes ``"low"`` there and the tools say
so; string levels on other models need Ollama ≥ 0.18 (a 400 before), ``"max"`` needs ≥ 0.22.

This module does no printing: it returns values and raises :class:`SelectionError` (a
:class:`~ollamakit.errors.UsageError`, exit status 2) with the message and the fix.
"""

from __future__ import annotations

import asyncio
import difflib
import fnmatch
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from ollamakit.domain import ModelInfo, Think
from ollamakit.errors import OllamakitError, UsageError
from ollamakit.i18n import t

#: A listed model smaller than this is a manifest without weights: a cloud model.
CLOUD_MAX_BYTES: Final = 1 << 20
#: ``/api/show`` requests in flight at once while learning capabilities.
DESCRIBE_CONCURRENCY: Final = 8

Kind = Literal["chat", "embedding", "cloud"]
ThinkMode = Literal["off", "on", "low", "medium", "high", "max"]
THINK_MODES: Final[tuple[ThinkMode, ...]] = ("off", "on", "low", "medium", "high", "max")
LEVELS: Final = ("low", "medium", "high", "max")


class SelectionError(UsageError):
    """A model choice that cannot run: the message, then what to do (exit status 2)."""

    key = "select.error"
    hint_key = "select.error_hint"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.params = {"detail": message, "hint": hint}

    @property
    def hint(self) -> str | None:
        return str(self.params["hint"]) or None


# --------------------------------------------------------------------------- versions


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """``"0.12.6"`` → (0, 12, 6); None when it is not a version (another engine, ``"?"``).

    >>> parse_version("v0.33.0-rc2"), parse_version("0.12"), parse_version("?")
    ((0, 33, 0), (0, 12, 0), None)
    """
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    if not match:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3) or 0))


# --------------------------------------------------------------------------- names


@dataclass(frozen=True, slots=True)
class Match:
    """A typed name and the server's name it stands for."""

    wanted: str
    name: str
    expanded: bool = False  # found by unique prefix: tell the user


def resolve(wanted: str, names: Sequence[str]) -> Match | None:
    """The server's name for ``wanted`` by the rule of the module docstring, or None.

    >>> ns = ["llama3.2:3b", "qwen3:8b", "qwen3:32b", "Mistral:latest"]
    >>> resolve("llama3", ns), resolve("mistral", ns).name, resolve("QWEN3:8B", ns).name
    (Match(wanted='llama3', name='llama3.2:3b', expanded=True), 'Mistral:latest', 'qwen3:8b')
    >>> resolve("qwen3", ns) is None, resolve("gemma", ns) is None
    (True, True)
    """
    typed = wanted.strip()
    if not typed:
        return None
    for candidate in (typed, f"{typed}:latest"):
        if candidate in names:
            return Match(wanted, candidate)
    lowered = typed.lower()
    for candidate in (lowered, f"{lowered}:latest"):
        for real in names:
            if real.lower() == candidate:
                return Match(wanted, real)
    prefixed = [real for real in names if real.lower().startswith(lowered)]
    return Match(wanted, prefixed[0], expanded=True) if len(prefixed) == 1 else None


def is_glob(pattern: str) -> bool:
    """
    >>> is_glob("qwen*"), is_glob("llama3.2:3b")
    (True, False)
    """
    return any(c in pattern for c in "*?[")


def glob_matches(pattern: str, name: str) -> bool:
    """Case-insensitive glob against the name and the name without ``:latest``.

    >>> glob_matches("QWEN*", "qwen3:8b"), glob_matches("nomic*text", "nomic-embed-text:latest")
    (True, True)
    >>> glob_matches("*:7b", "qwen3:8b")
    False
    """
    lowered, pat = name.lower(), pattern.strip().lower()
    return fnmatch.fnmatchcase(lowered, pat) or fnmatch.fnmatchcase(
        lowered.removesuffix(":latest"), pat
    )


def suggestions(wanted: str, names: Sequence[str], limit: int = 3) -> list[str]:
    """Close names (difflib), with and without their tags.

    >>> suggestions("lama3.2", ["llama3.2:3b", "qwen3:8b"])
    ['llama3.2:3b']
    """
    typed = wanted.strip().lower()
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(name.lower(), name)
        by_key.setdefault(name.lower().partition(":")[0], name)
    close = difflib.get_close_matches(typed, list(by_key), n=limit * 2, cutoff=0.6)
    return list(dict.fromkeys(by_key[c] for c in close))[:limit]


def unknown_model(wanted: str, names: Sequence[str]) -> SelectionError:
    """The exit-2 error for a name the server does not have: what exists, close names, pull."""
    listed = ", ".join(names) or t("select.none")
    close = suggestions(wanted, names)
    hints = [t("select.did_you_mean", names=", ".join(close))] if close else []
    if not is_glob(wanted):
        hints.append(t("select.pull_hint", model=wanted.strip()))
    return SelectionError(
        t("select.unknown_model", model=wanted, available=listed), "\n".join(hints)
    )


# --------------------------------------------------------------------------- kinds


def _heuristic_embedding(info: ModelInfo) -> bool:
    name, family = info.name.lower(), (info.family or "").lower()
    return "embed" in name or "bert" in family


def kind_of(info: ModelInfo) -> Kind:
    """What the model is: a cloud model, an embedding model, or one that can chat.

    >>> kind_of(ModelInfo("gpt-oss:120b-cloud", size_bytes=384))
    'cloud'
    >>> kind_of(ModelInfo("nomic-embed-text:latest", capabilities=frozenset({"embedding"})))
    'embedding'
    >>> kind_of(ModelInfo("all-minilm:latest", family="bert")), kind_of(ModelInfo("q:1b"))
    ('embedding', 'chat')
    """
    tiny = info.size_bytes is not None and info.size_bytes < CLOUD_MAX_BYTES
    if info.remote or (tiny and info.name.lower().endswith("cloud")):
        return "cloud"
    if info.capabilities is not None:
        # Ollama gives every model that can generate "completion"; embedding models lack it.
        return "chat" if "completion" in info.capabilities else "embedding"
    return "embedding" if _heuristic_embedding(info) else "chat"


def levels_only(info: ModelInfo) -> bool:
    """gpt-oss: thinking cannot be turned off, only set to a level.

    >>> levels_only(ModelInfo("gpt-oss:20b")), levels_only(ModelInfo("x", family="gptoss"))
    (True, True)
    """
    family = (info.family or "").lower().replace("-", "")
    return family == "gptoss" or info.name.lower().startswith("gpt-oss")


def can_think(info: ModelInfo) -> bool | None:
    """True / False from the capabilities; None when they are unknown."""
    if levels_only(info):
        return True
    return info.can_think


# --------------------------------------------------------------------------- capabilities


@dataclass
class AsyncCatalog:
    """The server's models with their capabilities, ``/api/show`` asked at most once each.

    ``describe`` is a backend's ``describe`` (``AsyncOllamaBackend.describe``); a model whose
    ``/api/show`` fails keeps what the list said (capabilities unknown).
    """

    describe: Callable[[str], Awaitable[ModelInfo]]
    _cache: dict[str, ModelInfo] = field(default_factory=dict)

    async def complete(self, infos: Sequence[ModelInfo]) -> list[ModelInfo]:
        """``infos`` with capabilities filled in where the list had none (concurrently)."""
        gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

        async def one(info: ModelInfo) -> ModelInfo:
            if info.capabilities is not None:
                return info
            if info.name not in self._cache:
                async with gate:
                    try:
                        shown = await self.describe(info.name)
                    except OllamakitError:
                        shown = info
                self._cache[info.name] = _merge(info, shown)
            return self._cache[info.name]

        return list(await asyncio.gather(*(one(i) for i in infos)))


@dataclass
class Catalog:
    """The synchronous twin of :class:`AsyncCatalog` (chat REPL, doctor): threads for many."""

    describe: Callable[[str], ModelInfo]
    _cache: dict[str, ModelInfo] = field(default_factory=dict)

    def _one(self, info: ModelInfo) -> ModelInfo:
        try:
            shown = self.describe(info.name)
        except OllamakitError:
            shown = info
        return _merge(info, shown)

    def complete(self, infos: Sequence[ModelInfo]) -> list[ModelInfo]:
        todo = [i for i in infos if i.capabilities is None and i.name not in self._cache]
        if len(todo) == 1:
            self._cache[todo[0].name] = self._one(todo[0])
        elif todo:
            with ThreadPoolExecutor(min(DESCRIBE_CONCURRENCY, len(todo))) as pool:
                for info in pool.map(self._one, todo):
                    self._cache[info.name] = info
        return [i if i.capabilities is not None else self._cache[i.name] for i in infos]

    def info(self, info: ModelInfo) -> ModelInfo:
        return self.complete([info])[0]


def _merge(listed: ModelInfo, shown: ModelInfo) -> ModelInfo:
    """The list's entry with what ``/api/show`` added (capabilities, remote, context)."""
    return replace(
        listed,
        capabilities=shown.capabilities,
        remote=listed.remote or shown.remote,
        family=listed.family or shown.family,
        context_length=listed.context_length or shown.context_length,
    )


# --------------------------------------------------------------------------- choosing


@dataclass(frozen=True, slots=True)
class Skipped:
    """A model left out, and why: ``embedding``, ``cloud`` or ``excluded``."""

    name: str
    reason: Literal["embedding", "cloud", "excluded"]

    def notice(self) -> str:
        """The one line the tools print for it."""
        return t(f"select.skipped_{self.reason}", model=self.name)


@dataclass(frozen=True, slots=True)
class Selection:
    """The models to use (server names, in order), and what was expanded or skipped."""

    models: tuple[ModelInfo, ...]
    expanded: tuple[Match, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def cloud(self) -> list[str]:
        """Cloud models chosen (named exactly): their inference goes through ollama.com."""
        return [m.name for m in self.models if kind_of(m) == "cloud"]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    def notices(self) -> list[str]:
        """One line per expansion and per skipped model (the tools print them all)."""
        lines = [t("select.expanded", wanted=m.wanted, model=m.name) for m in self.expanded]
        lines += [t("select.cloud_named", model=name) for name in self.cloud]
        return lines + [s.notice() for s in self.skipped]


def pick(
    wanted: Sequence[str],
    listed: Sequence[ModelInfo],
    exclude: Sequence[str] = (),
) -> tuple[list[ModelInfo], list[bool], tuple[Match, ...], tuple[Skipped, ...]]:
    """Names and globs against the list, before capabilities are known.

    Returns the chosen entries, for each whether it was named exactly (an explicit choice, not
    a glob or "everything"), the expansions, and what ``--exclude`` removed. Raises
    :class:`SelectionError` for a name or glob that matches nothing.
    """
    names = [m.name for m in listed]
    by_name = {m.name: m for m in listed}
    chosen: dict[str, bool] = {}
    expanded: list[Match] = []
    for typed in wanted:
        if is_glob(typed):
            hits = [n for n in names if glob_matches(typed, n)]
            if not hits:
                raise unknown_model(typed, names)
            for hit in hits:
                chosen.setdefault(hit, False)
            continue
        match = resolve(typed, names)
        if match is None:
            raise unknown_model(typed, names)
        if match.expanded:
            expanded.append(match)
        chosen[match.name] = True
    if not wanted:
        chosen = dict.fromkeys(names, False)
    excluded: list[Skipped] = []
    for pattern in exclude:
        for name in list(chosen):
            if _excludes(pattern, name, names):
                del chosen[name]
                excluded.append(Skipped(name, "excluded"))
    infos = [by_name[n] for n in chosen]
    return infos, [chosen[n] for n in chosen], tuple(expanded), tuple(excluded)


def _excludes(pattern: str, name: str, names: Sequence[str]) -> bool:
    if is_glob(pattern):
        return glob_matches(pattern, name)
    match = resolve(pattern, names)
    return match is not None and match.name == name


def classify(
    infos: Sequence[ModelInfo], explicit: Sequence[bool]
) -> tuple[list[ModelInfo], list[Skipped]]:
    """Drop embedding and cloud models chosen implicitly; refuse an explicit embedding model.

    A cloud model named exactly is kept (the user asked for it); an embedding model named
    exactly is an error: it cannot chat.
    """
    kept: list[ModelInfo] = []
    skipped: list[Skipped] = []
    for info, named in zip(infos, explicit, strict=True):
        kind = kind_of(info)
        if kind == "embedding" and named:
            raise SelectionError(
                t("select.cannot_chat", model=info.name), t("select.cannot_chat_hint")
            )
        if kind != "chat" and not named:
            skipped.append(Skipped(info.name, kind))
            continue
        kept.append(info)
    return kept, skipped


async def select_async(
    listed: Sequence[ModelInfo],
    wanted: Sequence[str],
    exclude: Sequence[str],
    catalog: AsyncCatalog,
) -> Selection:
    """The bench's and ``chat --auto``'s choice: names, globs, ``--exclude``, capabilities."""
    infos, explicit, expanded, excluded = pick(wanted, listed, exclude)
    infos = await catalog.complete(infos)
    kept, skipped = classify(infos, explicit)
    return Selection(tuple(kept), expanded, excluded + tuple(skipped))


def select(
    listed: Sequence[ModelInfo],
    wanted: Sequence[str],
    exclude: Sequence[str],
    catalog: Catalog,
) -> Selection:
    """The synchronous twin of :func:`select_async` (the chat, the doctor)."""
    infos, explicit, expanded, excluded = pick(wanted, listed, exclude)
    infos = catalog.complete(infos)
    kept, skipped = classify(infos, explicit)
    return Selection(tuple(kept), expanded, excluded + tuple(skipped))


def smallest_local(infos: Iterable[ModelInfo]) -> list[ModelInfo]:
    """Local models that can chat, smallest first (the doctor's test generation).

    >>> ms = [ModelInfo("big", 9 << 30), ModelInfo("oss:120b-cloud", 384, remote=True),
    ...       ModelInfo("nomic-embed-text", 1 << 28), ModelInfo("small", 2 << 30)]
    >>> [m.name for m in smallest_local(ms)]
    ['small', 'big']
    """
    usable = [m for m in infos if kind_of(m) == "chat"]
    return sorted(usable, key=lambda m: (m.size_bytes or 0, m.name))


# --------------------------------------------------------------------------- thinking


def parse_think_mode(text: str) -> ThinkMode | None:
    """``--think`` / ``/think`` values; ``true``/``false`` and ``none`` are accepted too.

    >>> parse_think_mode("OFF"), parse_think_mode("true"), parse_think_mode("max")
    ('off', 'on', 'max')
    >>> parse_think_mode("maybe") is None
    True
    """
    value = text.strip().lower()
    aliases = {"true": "on", "false": "off", "none": "off", "yes": "on", "no": "off"}
    value = aliases.get(value, value)
    for mode in THINK_MODES:
        if mode == value:
            return mode
    return None


def check_think_version(mode: ThinkMode, version: str | None, *, any_plain: bool) -> None:
    """Refuse a level this server cannot take (exit 2): ``max`` before 0.22, and a string
    level before 0.18 when ``any_plain`` (a thinking model other than gpt-oss is chosen)."""
    parsed = parse_version(version)
    if parsed is None or mode not in LEVELS:
        return
    if mode == "max" and parsed < (0, 22, 0):
        raise SelectionError(
            t("select.think_max_old", version=version), t("select.think_max_old_hint")
        )
    if any_plain and parsed < (0, 18, 0):
        raise SelectionError(
            t("select.think_levels_old", version=version, level=mode),
            t("select.think_levels_old_hint"),
        )


@dataclass(frozen=True, slots=True)
class ThinkChoice:
    """What to send as ``think`` for one model, and the notice to print (if any)."""

    value: Think | None
    notice: str | None = None


def think_for(info: ModelInfo, mode: ThinkMode) -> ThinkChoice:
    """The ``think`` value for ``mode`` on this model (version checks are done before).

    >>> think_for(ModelInfo("gpt-oss:20b"), "off").value
    'low'
    >>> think_for(ModelInfo("q:1b", capabilities=frozenset({"completion"})), "high").value
    False
    >>> think_for(ModelInfo("r1:1b", capabilities=frozenset({"completion", "thinking"})), "on")
    ThinkChoice(value=True, notice=None)
    """
    if levels_only(info):
        if mode == "off":
            return ThinkChoice("low", t("select.think_cannot_off", model=info.name))
        return ThinkChoice(True if mode == "on" else mode)
    thinks = can_think(info)
    if mode == "off" or thinks is False:
        # false is accepted by every model; true or a level on a non-thinking model is a 400.
        return ThinkChoice(False)
    return ThinkChoice(True if mode == "on" else mode)


def think_plan(
    infos: Sequence[ModelInfo], mode: ThinkMode, version: str | None
) -> tuple[dict[str, Think | None], list[str]]:
    """Per model the ``think`` to send, and the notices; raises for a level the version lacks."""
    any_plain = any(can_think(i) is not False and not levels_only(i) for i in infos)
    check_think_version(mode, version, any_plain=any_plain)
    values: dict[str, Think | None] = {}
    notices: list[str] = []
    for info in infos:
        choice = think_for(info, mode)
        values[info.name] = choice.value
        if choice.notice:
            notices.append(choice.notice)
    return values, notices


def capped_before_answer(rows: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """Per model, replies that ended at the ``num_predict`` cap with no answer text.

    >>> capped_before_answer([{"model": "m", "ok": True, "done_reason": "length",
    ...                        "ttft_ms": None}, {"model": "m", "ok": True, "ttft_ms": 5.0}])
    {'m': 1}
    """
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("ok") and row.get("done_reason") == "length" and row.get("ttft_ms") is None:
            model = str(row.get("model"))
            counts[model] = counts.get(model, 0) + 1
    return counts


__all__ = [
    "CLOUD_MAX_BYTES",
    "THINK_MODES",
    "AsyncCatalog",
    "Catalog",
    "Match",
    "Selection",
    "SelectionError",
    "Skipped",
    "ThinkChoice",
    "ThinkMode",
    "can_think",
    "capped_before_answer",
    "check_think_version",
    "classify",
    "glob_matches",
    "is_glob",
    "kind_of",
    "levels_only",
    "parse_think_mode",
    "parse_version",
    "pick",
    "resolve",
    "select",
    "select_async",
    "smallest_local",
    "suggestions",
    "think_for",
    "think_plan",
    "unknown_model",
]
