"""Benchmark suites: the prompts a run sends, with the sampling options that make runs comparable.

The default suite ships in the package: a greeting, a coding task, a reasoning task, a
long-prompt summary (≈2k tokens of input, so prefill shows up in ``prompt_tps``) and a
Traditional Chinese prompt. Each is its own category, named exactly as the prompt
(``greeting``, ``coding``, ``reasoning``, ``long-summary``, ``zh-tw``): the picker, ``--prompt``,
``--category`` and every table use one id for one thing. Category names are ids; the picker
shows a translated description next to the built-in ones (:func:`category_label`).

Every suite fixes ``seed`` and ``temperature`` 0 and caps ``num_predict``, so two runs
generate the same number of tokens and their rates compare.

The long text is generated, not stored: :func:`long_document` builds a fictional utility report
from fixed word lists by index arithmetic (no ``random``), so it is identical on every machine
and Python version.

Prefix cache: Ollama reuses the KV cache of a prompt prefix it has seen, which would turn every
repeated prefill into a few milliseconds. :func:`marked` puts a run marker at the *start* of the
first message (``[bench 3f2a9c01 #7] ...``, like the epoch marker Ollama's own ``cmd/bench``
prefixes), so no two requests of a run share a prefix and every request pays its full prefill.

A suite can also come from a file, ``--suite my.toml`` (or ``.yaml``/``.yml``); the format is
documented for users in ``docs/suites.md``, with ``docs/examples/suite.toml`` (loaded by a
test)::

    name = "support-bot"          # optional, default: the file name
    seed = 42                     # optional
    temperature = 0.0             # optional
    num_predict = 200             # optional; -1 = no cap

    [[prompts]]
    id = "refund"                 # required, unique: letters, digits, - _ .
    category = "support"          # optional, default "custom"
    prompt = "A customer asks ..."  # required
    system = "You are ..."        # optional

Every problem is a :class:`UsageError` naming the file, the field and what is wrong.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import yaml

from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.types import Message, Options

DEFAULT_SUITE_NAME: Final = "default"
DEFAULT_SEED: Final = 42
DEFAULT_TEMPERATURE: Final = 0.0
DEFAULT_NUM_PREDICT: Final = 256
#: Target size of the long-prompt text, in words (≈ 1.3 tokens per English word: ≈ 2k tokens).
LONG_DOCUMENT_WORDS: Final = 1_550

_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt of a suite."""

    id: str
    category: str
    text: str
    system: str | None = None


@dataclass(frozen=True, slots=True)
class Suite:
    """A named list of prompts and the sampling options they run with."""

    name: str
    prompts: tuple[Prompt, ...]
    seed: int | None = DEFAULT_SEED
    temperature: float = DEFAULT_TEMPERATURE
    num_predict: int | None = DEFAULT_NUM_PREDICT
    source: Path | None = field(default=None, compare=False)

    @property
    def categories(self) -> list[str]:
        """Categories in suite order, each once."""
        return list(dict.fromkeys(p.category for p in self.prompts))

    def only(self, categories: Iterable[str]) -> Suite:
        """The suite restricted to some categories (the interactive menu's choice)."""
        wanted = set(categories)
        return replace(self, prompts=tuple(p for p in self.prompts if p.category in wanted))

    def prompts_in(self, category: str) -> list[str]:
        """The ids of a category's prompts, in suite order."""
        return [p.id for p in self.prompts if p.category == category]

    def select(self, *, prompts: Sequence[str] = (), categories: Sequence[str] = ()) -> Suite:
        """``--prompt ID`` / ``--category NAME`` (each repeatable): the prompts named by
        either; nothing given, the whole suite. An unknown name is a :class:`UsageError`
        that lists what the suite has.

        >>> s = default_suite()
        >>> [p.id for p in s.select(prompts=["coding"], categories=["zh-tw"]).prompts]
        ['coding', 'zh-tw']
        >>> s.select(prompts=["long-prompt"])
        Traceback (most recent call last):
        ...
        ollamakit.errors.UsageError: --prompt long-prompt: ... greeting, coding, reasoning, ...
        """
        ids = [p.id for p in self.prompts]
        for flag, given, known in (
            ("--prompt", prompts, ids),
            ("--category", categories, self.categories),
        ):
            for name in given:
                if name not in known:
                    key = "bench.unknown_prompt" if flag == "--prompt" else "bench.unknown_category"
                    raise UsageError(
                        t(key, flag=flag, value=name, suite=self.name, known=", ".join(known))
                    )
        if not prompts and not categories:
            return self
        wanted_ids, wanted_categories = set(prompts), set(categories)
        return replace(
            self,
            prompts=tuple(
                p for p in self.prompts if p.id in wanted_ids or p.category in wanted_categories
            ),
        )

    def with_overrides(self, *, num_predict: int | None = None, seed: int | None = None) -> Suite:
        """``--num-predict`` / ``--seed`` win over the suite's own values."""
        return replace(
            self,
            num_predict=self.num_predict if num_predict is None else num_predict,
            seed=self.seed if seed is None else seed,
        )

    def options(self) -> Options:
        """Ollama ``options`` for every request of this suite.

        >>> default_suite().options()
        {'temperature': 0.0, 'seed': 42, 'num_predict': 256}
        """
        options: Options = {"temperature": self.temperature}
        if self.seed is not None:
            options["seed"] = self.seed
        if self.num_predict is not None:
            options["num_predict"] = self.num_predict
        return options


def marked(prompt: Prompt, marker: str) -> list[Message]:
    """The chat messages for one request, with ``marker`` at the very start.

    The marker goes into the *first* message (the system message if there is one), because
    the prefix cache matches from the first token of the rendered template.

    >>> marked(Prompt("g", "greeting", "Hi"), "bench ab12 #3")
    [{'role': 'user', 'content': '[bench ab12 #3] Hi'}]
    >>> [m["content"] for m in marked(Prompt("g", "greeting", "Hi", system="Be brief."), "x")]
    ['[x] Be brief.', 'Hi']
    """
    if prompt.system is not None:
        return [
            {"role": "system", "content": f"[{marker}] {prompt.system}"},
            {"role": "user", "content": prompt.text},
        ]
    return [{"role": "user", "content": f"[{marker}] {prompt.text}"}]


# --------------------------------------------------------------------------- the default suite

_PLACES: Final = (
    "North Basin",
    "Cedar Hill",
    "the Old Harbour",
    "Riverside",
    "Lantern Quay",
    "Millbrook",
    "the East Terraces",
    "Stonebridge",
)
_TOPICS: Final = (
    ("pipe replacement", "kilometres of cast-iron main were replaced with ductile iron"),
    ("leak detection", "acoustic loggers located hidden leaks under paved streets"),
    ("water quality", "chlorine residuals stayed inside the target band at every sampling point"),
    ("customer service", "the average call was answered in under two minutes"),
    ("energy use", "pumping stations moved to off-peak hours where storage allowed"),
    ("storm response", "crews restored pressure after the autumn floods within a day"),
    ("metering", "old mechanical meters were exchanged for remote-read units"),
    ("training", "field staff completed confined-space and first-aid courses"),
)
_CAUSES: Final = (
    "a late delivery of valves",
    "an unusually dry summer",
    "a labour shortage in the spring",
    "higher prices for steel fittings",
    "roadworks by the city on the same streets",
    "a software migration in the billing office",
)
_OUTCOMES: Final = (
    "the council asked for a quarterly progress note",
    "residents reported fewer interruptions than the year before",
    "the regulator rated the work as satisfactory",
    "the budget line closed slightly under its forecast",
    "the board approved a second phase for next year",
    "complaints about discoloured water fell noticeably",
)


def long_document(words: int = LONG_DOCUMENT_WORDS) -> str:
    """A deterministic fictional report of about ``words`` words (≈ 1.3 tokens per word).

    >>> doc = long_document()
    >>> doc == long_document(), 1_450 < len(doc.split()) < 1_700
    (True, True)
    >>> long_document(60).splitlines()[0]
    'Section 1. North Basin, pipe replacement.'
    """
    paragraphs: list[str] = []
    count = 0
    index = 0
    while count < words:
        place = _PLACES[index % len(_PLACES)]
        topic, fact = _TOPICS[(index * 3) % len(_TOPICS)]
        cause = _CAUSES[(index * 5) % len(_CAUSES)]
        outcome = _OUTCOMES[(index * 7) % len(_OUTCOMES)]
        amount = 12 + (index * 37) % 83
        month = ("March", "May", "July", "September", "November")[index % 5]
        text = (
            f"Section {index + 1}. {place}, {topic}.\n"
            f"In {place} the utility reported that {fact}. The programme for this district "
            f"covered {amount} work orders, of which {amount - index % 9} were closed by "
            f"{month}. Progress slowed for a few weeks because of {cause}, and the team moved "
            f"crews from neighbouring districts to keep the schedule. By the end of the year "
            f"{outcome}. The district engineer noted that the remaining items are small, that "
            f"the spare-parts store is now better stocked, and that the lessons from this work "
            f"will be written into the plan for the next financial year."
        )
        paragraphs.append(text)
        count += len(text.split())
        index += 1
    return "\n\n".join(paragraphs)


def default_suite() -> Suite:
    """The suite that ships with ollamakit (``--suite default``)."""
    return Suite(
        name=DEFAULT_SUITE_NAME,
        prompts=(
            Prompt("greeting", "greeting", "Hello! Please introduce yourself in two sentences."),
            Prompt(
                "coding",
                "coding",
                "Write a Python function `merge_intervals(intervals)` that merges overlapping "
                "closed intervals given as a list of (start, end) tuples. Include a docstring, "
                "type hints and two doctest examples.",
            ),
            Prompt(
                "reasoning",
                "reasoning",
                "A train leaves at 14:10 and arrives at 17:45. It stopped twice, for 12 and "
                "18 minutes. For how long was it moving, and what was its average moving speed "
                "if the route is 246 km? Reason step by step, then give the answers.",
            ),
            Prompt(
                "long-summary",
                "long-summary",
                "Summarise the following annual report in five bullet points, then name the "
                "district with the most work orders.\n\n" + long_document(),
            ),
            Prompt(
                "zh-tw",
                "zh-tw",
                "請用繁體中文，分三段介紹台灣的夜市文化：它的歷史、常見的小吃，以及逛夜市時"
                "需要注意的禮儀。",
            ),
        ),
    )


#: The built-in categories and the catalogue keys of their descriptions.
_CATEGORY_KEYS: Final = {
    "greeting": "bench.category_greeting",
    "coding": "bench.category_coding",
    "reasoning": "bench.category_reasoning",
    "long-summary": "bench.category_long_summary",
    "zh-tw": "bench.category_zh_tw",
}
BUILT_IN_CATEGORIES: Final = tuple(_CATEGORY_KEYS)


def category_label(category: str) -> str:
    """What the picker shows for a category: its id, and for a built-in one a description in
    the current language (``long-summary — summary of a long report (≈2k tokens)``).

    >>> category_label("support")
    'support'
    """
    key = _CATEGORY_KEYS.get(category)
    if key is None:
        return category
    return t("bench.category_label", id=category, text=t(key))


# --------------------------------------------------------------------------- files

_TOP_KEYS: Final = {"name", "seed", "temperature", "num_predict", "prompts"}
_PROMPT_KEYS: Final = {"id", "category", "prompt", "system"}


def resolve_suite(value: str | None) -> Suite:
    """``--suite NAME|FILE``: the built-in suite by name, else a TOML/YAML file."""
    if value is None or value == DEFAULT_SUITE_NAME:
        return default_suite()
    path = Path(value).expanduser()
    if not path.exists():
        raise UsageError(t("bench.suite_not_found", value=value, default=DEFAULT_SUITE_NAME))
    return load_suite(path)


def load_suite(path: Path) -> Suite:
    """Read and validate a suite file (``.toml``, ``.yaml`` or ``.yml``)."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise _invalid(path, "-", t("bench.suite_bad_extension", suffix=suffix or "(none)"))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(path, "-", str(exc)) from None
    data: Any
    try:
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _invalid(path, "-", t("bench.suite_parse", detail=first)) from None
    return parse_suite(data, path)


def parse_suite(data: object, path: Path) -> Suite:
    """Validate parsed suite data; ``path`` is only used in messages.

    >>> s = parse_suite({"prompts": [{"id": "a", "prompt": "Hi"}]}, Path("s.toml"))
    >>> s.name, s.prompts[0].category, s.options()
    ('s', 'custom', {'temperature': 0.0, 'seed': 42, 'num_predict': 256})
    >>> parse_suite({"prompts": [{"id": "a"}]}, Path("s.toml"))
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: Suite file s.toml, field prompts[0].prompt: missing ...
    """
    if not isinstance(data, Mapping):
        raise _invalid(path, "-", t("bench.suite_not_table"))
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise _invalid(path, unknown[0], t("bench.suite_unknown_key", allowed=_list(_TOP_KEYS)))
    name = _optional_str(data, "name", path) or path.stem
    seed = _optional_int(data, "seed", path, minimum=0)
    num_predict = _optional_int(data, "num_predict", path, minimum=-1)
    if num_predict == 0:
        raise _invalid(path, "num_predict", t("bench.suite_num_predict"))
    temperature = DEFAULT_TEMPERATURE
    if "temperature" in data:
        value = data["temperature"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(path, "temperature", t("bench.suite_type", expected="number"))
        if not math.isfinite(value) or value < 0:
            raise _invalid(path, "temperature", t("bench.suite_range", minimum=0))
        temperature = float(value)

    raw_prompts = data.get("prompts")
    if raw_prompts is None:
        raise _invalid(path, "prompts", t("bench.suite_missing"))
    if not isinstance(raw_prompts, list) or not raw_prompts:
        raise _invalid(path, "prompts", t("bench.suite_prompts_list"))
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_prompts):
        where = f"prompts[{i}]"
        if not isinstance(item, Mapping):
            raise _invalid(path, where, t("bench.suite_not_table"))
        extra = sorted(str(k) for k in item if k not in _PROMPT_KEYS)
        if extra:
            raise _invalid(
                path,
                f"{where}.{extra[0]}",
                t("bench.suite_unknown_key", allowed=_list(_PROMPT_KEYS)),
            )
        prompt_id = _required_str(item, "id", path, where)
        if not _ID_RE.fullmatch(prompt_id):
            raise _invalid(path, f"{where}.id", t("bench.suite_bad_id", value=prompt_id))
        if prompt_id in seen:
            raise _invalid(path, f"{where}.id", t("bench.suite_duplicate", value=prompt_id))
        seen.add(prompt_id)
        prompts.append(
            Prompt(
                id=prompt_id,
                category=_optional_str(item, "category", path, where) or "custom",
                text=_required_str(item, "prompt", path, where),
                system=_optional_str(item, "system", path, where),
            )
        )
    return Suite(
        name=name,
        prompts=tuple(prompts),
        seed=DEFAULT_SEED if seed is None else seed,
        temperature=temperature,
        num_predict=DEFAULT_NUM_PREDICT if num_predict is None else num_predict,
        source=path,
    )


def _invalid(path: Path, field_name: str, problem: str) -> UsageError:
    return UsageError(t("bench.suite_invalid", file=str(path), field=field_name, problem=problem))


def _list(keys: Iterable[str]) -> str:
    return ", ".join(sorted(keys))


def _qualified(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _required_str(data: Mapping[str, Any], key: str, path: Path, where: str = "") -> str:
    if key not in data:
        raise _invalid(path, _qualified(where, key), t("bench.suite_missing"))
    value = _optional_str(data, key, path, where)
    if not value:
        raise _invalid(path, _qualified(where, key), t("bench.suite_empty"))
    return value


def _optional_str(data: Mapping[str, Any], key: str, path: Path, where: str = "") -> str | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if not isinstance(value, str):
        raise _invalid(path, _qualified(where, key), t("bench.suite_type", expected="string"))
    if not value.strip():
        return None
    return value if key in ("prompt", "system") else value.strip()


def _optional_int(data: Mapping[str, Any], key: str, path: Path, *, minimum: int) -> int | None:
    if key not in data or data[key] is None:
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(path, key, t("bench.suite_type", expected="integer"))
    if value < minimum:
        raise _invalid(path, key, t("bench.suite_range", minimum=minimum))
    return value


__all__ = [
    "BUILT_IN_CATEGORIES",
    "DEFAULT_SUITE_NAME",
    "Prompt",
    "Suite",
    "category_label",
    "default_suite",
    "load_suite",
    "long_document",
    "marked",
    "parse_suite",
    "resolve_suite",
]
