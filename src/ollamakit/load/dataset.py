"""What a load test asks: heterogeneous requests from a dataset file, the shipped set or a suite.

A team does not send one prompt a thousand times: it mixes short chats, code questions,
summaries of long documents and follow-ups in long conversations. An :class:`Item` is one such
request: chat messages (a single prompt, or a whole conversation ending with a user turn) and
an optional output cap (``max_tokens`` → Ollama ``options.num_predict``). Lengths are whatever
the server counts (``prompt_eval_count``/``eval_count``): no tokenizer is needed here.

Formats (``--dataset FILE``; documented in docs/load.md)
    JSONL, one object per line (blank lines and lines starting with ``#`` are skipped)::

        {"prompt": "Explain DNS in two sentences.", "category": "chat", "max_tokens": 80}
        {"id": "fix-bug", "system": "You are a senior engineer.", "prompt": "..."}
        {"messages": [{"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "And in French?"}], "category": "chat"}

    CSV with a header row: ``prompt`` (required), and optionally ``id``, ``category``,
    ``system``, ``max_tokens``.

Requests are picked round-robin, starting at a seeded offset per user, so every user walks the
dataset in its own order and two runs with the same seed send the same requests.

Prefix cache: :func:`messages_for` puts a marker at the start of the first message (as bench
does), so a repeated item still pays its full prefill, as a new user's request would.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, cast

import orjson

from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.types import Message

#: The dataset that ships in the package (``--dataset team``, the default).
SHIPPED: Final = "team"
_ROLES: Final = ("system", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Item:
    """One request of a load test."""

    id: str
    category: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m["role"] == "user")


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    items: tuple[Item, ...]

    def picker(self, seed: int) -> Any:
        """``pick(index, user) -> Item``: round-robin from a seeded offset per user."""
        count = len(self.items)
        rng = random.Random(seed)
        offsets = [rng.randrange(count) for _ in range(4096)]

        def pick(index: int, user: int | None) -> Item:
            offset = offsets[(user or 0) % len(offsets)]
            return self.items[(offset + index) % count]

        return pick


def messages_for(item: Item, marker: str) -> list[Message]:
    """The chat messages for one request, with ``marker`` at the very start.

    >>> item = Item("a", "chat", ({"role": "user", "content": "Hi"},))
    >>> messages_for(item, "load 1f #3")
    [{'role': 'user', 'content': '[load 1f #3] Hi'}]
    """
    messages = [cast(Message, dict(m)) for m in item.messages]
    if messages and marker:
        messages[0]["content"] = f"[{marker}] {messages[0]['content']}"
    return messages


def parse_item(data: object, where: str, number: int) -> Item:
    """One dataset entry (a JSON object or a CSV row as a dict).

    >>> parse_item({"prompt": "Hi", "max_tokens": "40"}, "f.csv", 2)
    Item(id='f-2', category='custom', messages=({'role': 'user', 'content': 'Hi'},), max_tokens=40)
    >>> parse_item({"messages": [{"role": "user", "content": "a"},
    ...     {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}, "f", 1).turns
    2
    >>> parse_item({"text": "Hi"}, "f.jsonl", 3)
    Traceback (most recent call last):
    ...
    ollamakit.errors.UsageError: f.jsonl, entry 3: ...
    """
    if not isinstance(data, dict):
        raise UsageError(t("load.dataset_entry", where=where, number=number, problem="{…}"))

    def bad(problem: str) -> UsageError:
        return UsageError(t("load.dataset_entry", where=where, number=number, problem=problem))

    messages: list[Message] = []
    system = data.get("system")
    if system not in (None, ""):
        if not isinstance(system, str):
            raise bad("system")
        messages.append({"role": "system", "content": system})
    if data.get("messages") not in (None, ""):
        raw = data["messages"]
        if not isinstance(raw, list) or not raw:
            raise bad("messages")
        for m in raw:
            if (
                not isinstance(m, dict)
                or m.get("role") not in _ROLES
                or not isinstance(m.get("content"), str)
            ):
                raise bad("messages")
            messages.append({"role": m["role"], "content": m["content"]})
        if messages[-1]["role"] != "user":
            raise bad("messages[-1].role = user")
    elif isinstance(data.get("prompt"), str) and data["prompt"].strip():
        messages.append({"role": "user", "content": data["prompt"]})
    else:
        raise bad("prompt | messages")
    max_tokens = data.get("max_tokens")
    if max_tokens in (None, ""):
        cap = None
    else:
        try:
            cap = int(cast(Any, max_tokens))
        except (TypeError, ValueError):
            raise bad("max_tokens") from None
        if cap < 1:
            raise bad("max_tokens")
    ident = data.get("id")
    category = data.get("category")
    return Item(
        id=str(ident) if ident not in (None, "") else f"{Path(where).stem}-{number}",
        category=str(category) if category not in (None, "") else "custom",
        messages=tuple(messages),
        max_tokens=cap,
    )


def parse_jsonl(text: str, where: str) -> list[Item]:
    items: list[Item] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise UsageError(
                t("load.dataset_entry", where=where, number=number, problem=str(exc))
            ) from None
        items.append(parse_item(data, where, number))
    return items


def parse_csv(text: str, where: str) -> list[Item]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "prompt" not in reader.fieldnames:
        raise UsageError(t("load.dataset_entry", where=where, number=1, problem="prompt column"))
    return [parse_item(row, where, number) for number, row in enumerate(reader, 2)]


def load_dataset(value: str | None) -> Dataset:
    """``--dataset NAME|FILE``: the shipped set (``team``), ``suite`` (bench prompts) or a file."""
    if value in (None, "", SHIPPED):
        text = resources.files(__package__).joinpath("data", f"{SHIPPED}.jsonl").read_text("utf-8")
        return Dataset(SHIPPED, tuple(parse_jsonl(text, f"{SHIPPED}.jsonl")))
    if value == "suite":
        from ollamakit.bench.suites import default_suite

        suite = default_suite()
        items = []
        for p in suite.prompts:
            messages: list[Message] = []
            if p.system:
                messages.append({"role": "system", "content": p.system})
            messages.append({"role": "user", "content": p.text})
            items.append(Item(p.id, p.category, tuple(messages), suite.num_predict))
        return Dataset("suite", tuple(items))
    assert value is not None
    path = Path(value).expanduser()
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UsageError(t("load.dataset_unreadable", path=str(path), error=exc.strerror)) from None
    items_list = parse_csv(text, str(path)) if path.suffix.lower() == ".csv" else None
    if items_list is None:
        items_list = parse_jsonl(text, str(path))
    if not items_list:
        raise UsageError(t("load.dataset_empty", path=str(path)))
    return Dataset(path.stem, tuple(items_list))


def describe(dataset: Dataset) -> dict[str, Any]:
    """A small description for the run document (what was sent, not the texts)."""
    categories: dict[str, int] = {}
    for item in dataset.items:
        categories[item.category] = categories.get(item.category, 0) + 1
    return {
        "name": dataset.name,
        "items": len(dataset.items),
        "categories": categories,
        "multi_turn": sum(1 for i in dataset.items if i.turns > 1),
    }


__all__ = [
    "SHIPPED",
    "Dataset",
    "Item",
    "describe",
    "load_dataset",
    "messages_for",
    "parse_csv",
    "parse_item",
    "parse_jsonl",
]
