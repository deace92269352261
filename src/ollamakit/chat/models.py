"""The server's model list as the chat shows it: matching a typed name, sizes, a table.

Name matching follows Ollama's own rule that a name without a tag means ``:latest``, and
adds two conveniences for typing: case does not matter, and a unique prefix is enough
(``/model qwen`` when only ``qwen3:8b`` starts with it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

from ollamakit.measure import format as fmt
from ollamakit.types import ModelEntry


def resolve_model(name: str, models: Sequence[ModelEntry]) -> str | None:
    """The server's name for ``name``, or None when nothing (or more than one) matches.

    >>> ms = [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}, {"name": "qwen3:32b"}]
    >>> resolve_model("llama3.2", ms), resolve_model("QWEN3:8B", ms), resolve_model("llama", ms)
    ('llama3.2:latest', 'qwen3:8b', 'llama3.2:latest')
    >>> resolve_model("qwen3", ms) is None, resolve_model("mistral", ms) is None
    (True, True)
    """
    wanted = name.strip()
    names = [m["name"] for m in models]
    for candidate in (wanted, f"{wanted}:latest"):
        if candidate in names:
            return candidate
    lowered = wanted.lower()
    for candidate in (lowered, f"{lowered}:latest"):
        for real in names:
            if real.lower() == candidate:
                return real
    prefixed = [real for real in names if real.lower().startswith(lowered)]
    return prefixed[0] if len(prefixed) == 1 else None


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
