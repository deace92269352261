"""Servers side by side: the table of a run that compared servers (``bench/compare.py``).

Design
------
A compared run's summary rows carry ``server``; this module lays them out with one block of
columns per server, for the same (model, prompt, concurrency) cell: the median TTFT, the
client-side decode rate (``e2e_tps``, comparable whichever API answered: Ollama's ``/v1``
reports no durations, so its server-side ``eval_tps`` is null) and the server's own rate
where it reports one. A document of one server gives no table (``None`` / empty).

The terminal, Markdown and HTML reports use the same :func:`side_by_side` rows.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from ollamakit.i18n import t
from ollamakit.measure.format import DASH, number
from ollamakit.measure.schema import RunDocument
from ollamakit.report.common import gpu_text, metric
from ollamakit.ui.sanitize import clean_line
from ollamakit.ui.tables import print_table


@dataclass(frozen=True, slots=True)
class Cell:
    ttft_ms: float | None
    decode_tps: float | None
    eval_tps: float | None
    ok: str
    gpu: str = DASH  # where the model ran on that server (its own /api/ps), or why unknown


@dataclass(frozen=True, slots=True)
class Row:
    model: str
    prompt_id: str
    concurrency: int
    cells: tuple[Cell | None, ...]  # one per server, None when that server has no such cell


def server_names(doc: Mapping[str, Any]) -> list[str]:
    """The compared servers' names, in order; fewer than two: not a comparison."""
    return [str(s.get("name", "")) for s in doc.get("servers") or [] if isinstance(s, Mapping)]


def side_by_side(doc: Mapping[str, Any]) -> tuple[list[str], list[Row]]:
    """The names and one :class:`Row` per cell, in first-seen order (empty: one server).

    >>> doc = {"servers": [{"name": "a"}, {"name": "b"}], "summary": [
    ...     {"server": "a", "model": "m", "prompt_id": "p", "concurrency": 1, "ok": 1, "n": 1,
    ...      "ttft_ms": {"median": 10.0}},
    ...     {"server": "b", "model": "m", "prompt_id": "p", "concurrency": 1, "ok": 1, "n": 1,
    ...      "ttft_ms": {"median": 20.0}}]}
    >>> names, [row] = side_by_side(doc)
    >>> names, [c.ttft_ms for c in row.cells if c]
    (['a', 'b'], [10.0, 20.0])
    """
    names = server_names(doc)
    if len(names) < 2:
        return names, []
    facts = server_facts(doc, names[0])
    cells: dict[tuple[str, str, int], dict[str, Cell]] = {}
    for row in doc.get("summary") or []:
        key = (
            str(row.get("model", "")),
            str(row.get("prompt_id", "")),
            int(row.get("concurrency", 1)),
        )
        server = str(row.get("server", names[0]))
        cells.setdefault(key, {})[server] = Cell(
            metric(row, "ttft_ms"),
            metric(row, "e2e_tps"),
            metric(row, "eval_tps"),
            f"{row.get('ok', 0)}/{row.get('n', 0)}",
            where_text(facts.get((server, key[0]))),
        )
    rows = [
        Row(model, prompt, level, tuple(by_server.get(name) for name in names))
        for (model, prompt, level), by_server in cells.items()
    ]
    return names, rows


def server_facts(doc: Mapping[str, Any], first: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    """``models[]`` by (server, model); an entry without ``server`` is the first server's
    (compared runs saved before each server had its own)."""
    out: dict[tuple[str, str], Mapping[str, Any]] = {}
    for facts in doc.get("models") or []:
        if isinstance(facts, Mapping):
            out[(str(facts.get("server") or first), str(facts.get("model", "")))] = facts
    return out


def where_text(facts: Mapping[str, Any] | None) -> str:
    """A server's GPU cell: "100% GPU", "63% GPU", "CPU", or why it is unknown.

    >>> where_text({"gpu_share": 0.63}), where_text({"residency_absent": "no_api_ps"})
    ('63% GPU', 'no /api/ps')
    >>> where_text(None)
    '—'
    """
    if not facts:
        return DASH
    share = facts.get("gpu_share")
    if isinstance(share, int | float):
        return gpu_text(float(share))
    absent = facts.get("residency_absent")
    if isinstance(absent, str):
        try:
            return t(f"report.servers_gpu_{absent}")
        except KeyError:
            return DASH
    return DASH


def _skipped_on(doc: Mapping[str, Any], names: Sequence[str]) -> dict[tuple[str, str], str]:
    """(server, model) → why the model was skipped on that server."""
    if not names:
        return {}
    return {
        key: str(facts["skipped"])
        for key, facts in server_facts(doc, names[0]).items()
        if facts.get("skipped")
    }


def labelled(doc: RunDocument) -> RunDocument:
    """For the ordinary tables of a compared run: each row's model names its server too
    (``fast:1b @ ollama /v1``), so rows of different servers are never mistaken for one
    another. A run of one server comes back as it is. Only for display: JSON and CSV keep
    ``model`` and ``server`` apart.

    >>> doc = {"servers": [{"name": "a"}, {"name": "b"}],
    ...        "summary": [{"server": "b", "model": "m"}], "results": [], "cold_loads": []}
    >>> labelled(doc)["summary"][0]["model"]
    'm @ b'
    """
    if len(server_names(doc)) < 2:
        return doc

    def tag(rows: Any) -> Any:
        return [
            {**row, "model": f"{row.get('model', '')} @ {row['server']}"}
            if isinstance(row, Mapping) and row.get("server")
            else row
            for row in rows or []
        ]

    view = dict(doc)
    for key in ("summary", "results", "cold_loads", "concurrency_summary", "models"):
        if key in view:
            view[key] = tag(view[key])
    return view  # type: ignore[return-value]


def _headers(names: Sequence[str], sep: str = " ") -> list[str]:
    heads = [t("report.col_model"), t("report.col_prompt"), "c"]
    for name in (clean_line(n) for n in names):
        heads += [
            f"{name}{sep}{t('report.col_ttft_median')}",
            f"{name}{sep}{t('report.servers_decode')}",
            f"{name}{sep}{t('report.col_eval_tps')}",
            t("report.col_ok"),
            t("report.col_gpu"),
        ]
    return heads


def _cells(
    row: Row, names: Sequence[str] = (), skipped: Mapping[tuple[str, str], str] | None = None
) -> list[str]:
    out = [row.model, row.prompt_id, str(row.concurrency)]
    for index, cell in enumerate(row.cells):
        if cell is None:
            name = names[index] if index < len(names) else ""
            gone = t("report.servers_skipped") if (name, row.model) in (skipped or {}) else DASH
            out += [DASH, DASH, DASH, gone, DASH]
        else:
            out += [
                number(cell.ttft_ms),
                number(cell.decode_tps),
                number(cell.eval_tps),
                cell.ok,
                cell.gpu,
            ]
    return out


def print_side_by_side(doc: RunDocument, console: Console) -> None:
    """The terminal table (nothing for a run of one server)."""
    names, rows = side_by_side(doc)
    if not rows:
        return
    table = Table(box=box.SIMPLE_HEAD, title=t("report.servers_title"), title_justify="left")
    for i, head in enumerate(_headers(names, "\n")):
        table.add_column(head, justify="left" if i < 2 else "right")
    skipped = _skipped_on(doc, names)
    for row in rows:
        table.add_row(*(clean_line(c) for c in _cells(row, names, skipped)))
    print_table(console, table)


def markdown_side_by_side(doc: RunDocument) -> str:
    """A Markdown section ("" for one server)."""
    names, rows = side_by_side(doc)
    if not rows:
        return ""

    def cell(text: str) -> str:
        return clean_line(text).replace("|", "\\|")

    heads = _headers(names)
    lines = [f"#### {cell(t('report.servers_title'))}", ""]
    lines.append("| " + " | ".join(cell(h) for h in heads) + " |")
    lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(heads))) + "|")
    skipped = _skipped_on(doc, names)
    lines += [
        "| " + " | ".join(cell(c) for c in _cells(row, names, skipped)) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n"


def html_side_by_side(doc: RunDocument) -> str:
    """An HTML section ("" for one server)."""
    names, rows = side_by_side(doc)
    if not rows:
        return ""

    def e(text: str) -> str:
        return html.escape(clean_line(text))

    head = "".join(f"<th>{e(h)}</th>" for h in _headers(names))
    skipped = _skipped_on(doc, names)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(c)}</td>" for c in _cells(row, names, skipped)) + "</tr>"
        for row in rows
    )
    return (
        f'<section class="servers"><h2>{e(t("report.servers_title"))}</h2>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


__all__ = [
    "Cell",
    "Row",
    "html_side_by_side",
    "labelled",
    "markdown_side_by_side",
    "print_side_by_side",
    "server_facts",
    "server_names",
    "side_by_side",
    "where_text",
]
