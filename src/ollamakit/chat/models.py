"""The server's model list as the chat shows it: matching a typed name, sizes, a table.

Name matching follows Ollama's own rule that a name without a tag means ``:latest``, and
adds two conveniences for typing: case does not matter, and a unique prefix is enough
(``/model qwen`` when only ``qwen3:8b`` starts with it).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.markup import escape
from rich.table import Table

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


def format_size(size: int | None) -> str:
    """Bytes in decimal units, as ``ollama list`` shows them.

    >>> format_size(2019393189), format_size(6_591_830_464), format_size(274_302_450)
    ('2.0 GB', '6.6 GB', '274 MB')
    >>> format_size(None)
    '—'
    """
    if not size or size < 0:
        return "—"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} B"


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
