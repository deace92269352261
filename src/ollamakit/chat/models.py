"""The server's model list as the chat shows it: matching a typed name, sizes, a table.

Name matching is :func:`ollamakit.selection.resolve`, the rule every tool uses: exact name,
then ``:latest``, ignoring case, then a unique prefix (``/model qwen`` when only ``qwen3:8b``
starts with it), which the chat says in one line. Which models can chat (not embedding models,
and not cloud models unless named) is :mod:`ollamakit.selection` too; this module only adapts
the chat's wire entries (``/api/tags`` dicts) to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from ollamakit.client import OllamaClient
from ollamakit.client.ollama import describe_info, model_info
from ollamakit.domain import ModelInfo
from ollamakit.measure import format as fmt
from ollamakit.selection import Catalog, Match, resolve
from ollamakit.types import ModelEntry


def resolve_model(name: str, models: Sequence[ModelEntry]) -> str | None:
    """The server's name for ``name``, or None when nothing (or more than one) matches.

    >>> ms = [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}, {"name": "qwen3:32b"}]
    >>> resolve_model("llama3.2", ms), resolve_model("QWEN3:8B", ms), resolve_model("llama", ms)
    ('llama3.2:latest', 'qwen3:8b', 'llama3.2:latest')
    >>> resolve_model("qwen3", ms) is None, resolve_model("mistral", ms) is None
    (True, True)
    """
    match = match_model(name, models)
    return None if match is None else match.name


def match_model(name: str, models: Sequence[ModelEntry]) -> Match | None:
    """:func:`ollamakit.selection.resolve` over the chat's entries (``expanded`` to be said)."""
    return resolve(name, [m["name"] for m in models])


def infos(models: Sequence[ModelEntry]) -> list[ModelInfo]:
    """The entries as :class:`ModelInfo` values (capabilities as the list says)."""
    return [model_info(m) for m in models]


def catalog_for(client: OllamaClient) -> Catalog:
    """A per-session cache of ``/api/show`` answers (capabilities on servers before 0.30)."""
    return Catalog(lambda name: describe_info(name, client.show(name)))


def info_of(name: str, models: Sequence[ModelEntry], catalog: Catalog | None) -> ModelInfo:
    """What is known about ``name``: its list entry, completed by ``/api/show`` when needed."""
    entry = next((m for m in models if m["name"] == name), None)
    info = model_info(entry) if entry is not None else ModelInfo(name)
    return catalog.info(info) if catalog is not None else info


format_size = fmt.size  # the one bytes formatter (measure/format.py), as ``ollama list``


def model_table(
    models: Sequence[ModelEntry], *, current: str | None, headers: Sequence[str]
) -> Table:
    """Numbered table: #, name, parameters, quantization, size (the current one marked)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column(headers[0], overflow="fold")
    table.add_column(headers[1], justify="right")
    table.add_column(headers[2])
    table.add_column(headers[3], justify="right")
    for index, model in enumerate(models, start=1):
        details = model.get("details") or {}
        name = model["name"]
        marked = f"[bold green]{escape(name)}[/] [green]●[/]" if name == current else escape(name)
        table.add_row(
            str(index),
            marked,
            details.get("parameter_size") or "—",
            details.get("quantization_level") or "—",
            format_size(model.get("size")),
        )
    return table
