"""HTML report (``--output run.html``): one self-contained page to read, share and print.

Design
------
* **Self-contained and silent.** Inline CSS, inline SVG charts, no JavaScript, no fonts or
  images from anywhere: the privacy rule says the tool talks to no one but the server, and a
  report opened next month must not either. A ``Content-Security-Policy`` meta tag
  (``default-src 'none'``) makes the browser enforce it, and also neuters any markup that
  escaping might have missed.
* **Everything escaped.** Model names, prompt ids, labels and error texts come from the
  server or the user; every one goes through :func:`html.escape` (``quote=True``) before it
  reaches the page, in text and in attributes alike, in HTML and in SVG.
* **Readable anywhere.** CSS custom properties with a ``prefers-color-scheme: dark`` palette,
  a system font stack (with CJK fallbacks named, none downloaded), tabular numbers, a print
  stylesheet (no backgrounds, tables not split, the per-request list expanded).
* **Charts are plain SVG** drawn here: horizontal bars (long model names fit, values are
  printed at the bar end, p95 as a whisker), a line chart for the concurrency sweep. Each mark
  carries a ``<title>`` (the browser's tooltip) and each chart a text alternative.
* **Labels through the catalogue** (``report.toml``), in the language of the process; the
  ``<html lang>`` follows it.

Sections: header (server, version, RTT, date, label, config), key figures, summary table,
charts (decode rate per model, per model and prompt; TTFT; concurrency), concurrency table,
cold loads, failures with their error text, hints, and every request in a ``<details>``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Final, TypeVar, cast

from ollamakit.i18n import get_language, t
from ollamakit.measure.schema import ConcurrencyRow, RunDocument
from ollamakit.report.common import (
    DASH,
    base_rows,
    cold_loads,
    concurrency_levels,
    concurrency_rows,
    config_items,
    config_label,
    failure_groups,
    fmt_int,
    fmt_num,
    header_facts,
    is_number,
    metric,
    model_order,
    per_model_eval_tps,
    rtt_text,
    shorten,
    skipped_models,
    summary_cell,
    summary_columns,
    summary_is_computed,
    summary_rows,
    title,
)
from ollamakit.report.runstatus import doc_status

_R = TypeVar("_R", bound=Mapping[str, Any])

N_SERIES: Final = 8  # colours in the palette; series beyond wrap around


def e(value: object) -> str:
    """Escape for HTML text and attribute values (also inside inline SVG)."""
    return escape(str(value), quote=True)


# ---------------------------------------------------------------------------------------------
# Style

CSS: Final = (
    """
:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --panel: #ffffff; --fg: #1f2328; --muted: #59636e; --border: #d1d9e0;
  --grid: #e4e8ec; --accent: #0969da; --ok: #1a7f37; --bad: #cf222e; --bad-bg: #fff0ee;
  --warn: #9a6700; --hint-bg: #eef6ff; --zebra: #f8fafb; --bar: rgba(66, 105, 208, .16);
  --s0: #4269d0; --s1: #efb118; --s2: #ff725c; --s3: #6cc5b0;
  --s4: #3ca951; --s5: #ff8ab7; --s6: #a463f2; --s7: #97bbf5;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --panel: #161b22; --fg: #e6edf3; --muted: #9198a1; --border: #30363d;
    --grid: #262c34; --accent: #4493f8; --ok: #3fb950; --bad: #f85149; --bad-bg: #2d1416;
    --warn: #d29922; --hint-bg: #0f2640; --zebra: #1a1f27; --bar: rgba(110, 150, 255, .22);
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body {
  margin: 0 auto; max-width: 1180px; padding: 28px 32px 48px; color: var(--fg);
  background: var(--bg); line-height: 1.5; font-size: 15px;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", "Noto Sans CJK TC", "Noto Sans TC", "PingFang TC", "Microsoft JhengHei",
    "WenQuanYi Zen Hei", sans-serif;
  -webkit-text-size-adjust: 100%;
}
code, .mono {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
    "DejaVu Sans Mono", monospace;
  font-size: .92em;
}
h1 { font-size: 1.75rem; margin: .1rem 0 .6rem; line-height: 1.25; }
h2 {
  font-size: 1.15rem; margin: 2.2rem 0 .8rem; padding-bottom: .35rem;
  border-bottom: 1px solid var(--border);
}
h3 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
p { margin: .4rem 0; }
.eyebrow {
  color: var(--muted); font-size: .8rem; letter-spacing: .08em; text-transform: uppercase;
  margin: 0;
}
.muted { color: var(--muted); }
.badge {
  display: inline-block; padding: .05rem .6rem; border-radius: 999px; font-size: .8rem;
  font-weight: 600; border: 1px solid currentColor; vertical-align: middle;
}
.tone-ok { color: var(--ok); }
.tone-warn { color: var(--warn); }
.tone-bad { color: var(--bad); }
.demo-banner {
  margin: .8rem 0; padding: .6rem .9rem; border: 2px solid var(--warn); border-radius: 6px;
  color: var(--warn); font-weight: 600;
}
.facts {
  display: grid; grid-template-columns: repeat(auto-fill, minmax(210px, 1fr));
  gap: .5rem 1.5rem; margin: 1rem 0 .6rem;
}
.facts div { min-width: 0; }
.facts div:first-child { grid-column: span 2; }
.facts dt { color: var(--muted); font-size: .78rem; }
.facts dd { margin: 0; font-weight: 600; overflow-wrap: anywhere; }
.config { color: var(--muted); font-size: .88rem; }
.config code {
  color: var(--fg); background: var(--panel); border: 1px solid var(--border);
  border-radius: 4px; padding: 0 .35rem; margin-right: .2rem; white-space: nowrap;
}
.kpis {
  display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px;
  margin: 1.4rem 0 0;
}
.kpi {
  background: var(--panel); border: 1px solid var(--border); border-radius: 10px;
  padding: .8rem 1rem;
}
.kpi .k { color: var(--muted); font-size: .8rem; }
.kpi .v { font-size: 1.55rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.kpi .v small { font-size: .85rem; font-weight: 500; color: var(--muted); }
.kpi .s { color: var(--muted); font-size: .82rem; overflow-wrap: anywhere; }
.kpi.bad .v { color: var(--bad); }
.kpi.warn .v { color: var(--warn); }
.table-wrap {
  overflow-x: auto; background: var(--panel); border: 1px solid var(--border);
  border-radius: 10px;
}
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { padding: .45rem .7rem; text-align: left; vertical-align: top; }
thead th {
  font-size: .78rem; color: var(--muted); font-weight: 600; border-bottom: 1px solid var(--border);
  background: var(--panel); white-space: nowrap;
}
tbody tr + tr td { border-top: 1px solid var(--grid); }
tbody tr:hover td { background-color: var(--zebra); }
td.model { font-weight: 600; white-space: nowrap; }  /* names are never broken */
tbody tr.group-start td { border-top: 1px solid var(--border); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.databar {
  background-image: linear-gradient(to right, var(--bar) var(--w), transparent var(--w));
}
.na { color: var(--muted); }
tr.fail td { background-color: var(--bad-bg) !important; }
td.err { color: var(--bad); overflow-wrap: anywhere; min-width: 14rem; }
table.requests { font-size: .8rem; }
table.requests th, table.requests td { padding: .3rem .45rem; }
td.name { white-space: nowrap; }  /* prompt ids, like model names, stay whole */
table.requests td.err { min-width: 9rem; }
.okn.partial { color: var(--warn); font-weight: 600; }
.okn.none { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: .85rem; margin-top: .5rem; }
figure {
  margin: 0 0 16px; background: var(--panel); border: 1px solid var(--border);
  border-radius: 10px; padding: 14px 16px 10px; break-inside: avoid;
}
figcaption { font-weight: 600; margin-bottom: .2rem; }
figcaption .muted { font-weight: 400; font-size: .85rem; }
.chart { display: block; width: 100%; height: auto; }
.chart text { fill: var(--fg); font-size: 12px; font-family: inherit; }
.chart .lbl { fill: var(--muted); }
.chart .grp { font-weight: 700; font-size: 12.5px; }
.chart .axis { fill: var(--muted); font-size: 11px; }
.chart .val { font-variant-numeric: tabular-nums; font-size: 11.5px; }
.chart .gridline { stroke: var(--grid); stroke-width: 1; }
.chart .baseline { stroke: var(--muted); stroke-width: 1; }
.chart .whisker { stroke: var(--fg); stroke-width: 1.2; opacity: .55; }
.chart .line { fill: none; stroke-width: 2.4; }
.chart .dot { stroke: var(--panel); stroke-width: 1.5; }
.legend {
  display: flex; flex-wrap: wrap; gap: .25rem 1rem; margin: .3rem 0 .4rem; font-size: .82rem;
}
.legend span { display: inline-flex; align-items: center; gap: .35rem; color: var(--muted); }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 3px; }
"""
    + "".join(
        f".s{i} {{ fill: var(--s{i}); stroke: var(--s{i}); }} "
        f".legend i.s{i} {{ background: var(--s{i}); }}\n"
        for i in range(N_SERIES)
    )
    + """
.chart .line { fill: none; }
.failures { list-style: none; padding: 0; margin: 0; }
.failures li {
  background: var(--bad-bg); border-left: 4px solid var(--bad); border-radius: 6px;
  padding: .55rem .8rem; margin: 0 0 .5rem; overflow-wrap: anywhere;
}
.failures .err { color: var(--bad); }
.hints { list-style: none; padding: 0; margin: 0; }
.hints li {
  background: var(--hint-bg); border-left: 4px solid var(--accent); border-radius: 6px;
  padding: .55rem .8rem; margin: 0 0 .5rem;
}
details { margin-top: .6rem; }
details > summary {
  cursor: pointer; font-weight: 600; padding: .5rem .2rem; color: var(--accent);
}
footer {
  margin-top: 2.5rem; padding-top: .8rem; border-top: 1px solid var(--border);
  color: var(--muted); font-size: .8rem;
}
@media (max-width: 640px) { body { padding: 16px; } .kpi .v { font-size: 1.3rem; } }
@media print {
  :root {
    --bg: #fff; --panel: #fff; --fg: #000; --muted: #444; --border: #bbb; --grid: #ddd;
    --zebra: #fff; --bad-bg: #fff; --hint-bg: #fff;
  }
  body { max-width: none; padding: 0; font-size: 11pt; }
  .table-wrap { overflow: visible; border: none; }
  tr, figure, .kpi, li { break-inside: avoid; }
  h2 { break-after: avoid; }
  details > summary { display: none; }
  details::details-content { content-visibility: visible; display: block; }
  a { color: inherit; text-decoration: none; }
}
"""
)

# ---------------------------------------------------------------------------------------------
# Small pieces


def _num_td(value: object, cls: str = "") -> str:
    text = fmt_num(value)
    classes = " ".join(c for c in ("num", cls, "na" if text == DASH else "") if c)
    return f'<td class="{classes}">{e(text)}</td>'


def _ttft_td(result: Mapping[str, Any]) -> str:
    """A request's TTFT, or "— (buffered)" when a buffering proxy made it the total time."""
    if result.get("buffered"):
        return f'<td class="num na">{e(t("report.cell_buffered"))}</td>'
    return _num_td(result.get("ttft_ms"))


def _int_td(value: object) -> str:
    text = fmt_int(value)
    return f'<td class="num{" na" if text == DASH else ""}">{e(text)}</td>'


def _okn_td(ok: int, n: int) -> str:
    cls = "" if ok == n else (" none" if ok == 0 else " partial")
    return f'<td class="num okn{cls}">{ok}/{n}</td>'


def _th(label: str, numeric: bool = False) -> str:
    return f'<th class="num">{e(label)}</th>' if numeric else f"<th>{e(label)}</th>"


def _table(head: str, body: Sequence[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return (
        f'<div class="table-wrap"><table{attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span><i class="s{i % N_SERIES}"></i>{e(name)}</span>' for i, name in enumerate(names)
    )
    return f'<div class="legend">{items}</div>'


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``top``.

    >>> nice_ticks(87)
    [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    >>> nice_ticks(0.3)
    [0.0, 0.1, 0.2, 0.3]
    >>> nice_ticks(0)
    [0.0, 1.0]
    """
    if top <= 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [float(round(i * step, 10)) for i in range(n + 1)]


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Charts


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None
    series: int = 0
    whisker: float | None = None  # p95, drawn as a line beyond the bar
    tooltip: str = ""


@dataclass(frozen=True, slots=True)
class BarGroup:
    label: str | None  # None: bars without a group header (one series)
    bars: list[Bar]


def bar_chart(groups: Sequence[BarGroup], unit: str, description: str, bold_labels: bool) -> str:
    """Horizontal bars, optionally grouped (a header row per group), as an SVG string."""
    width, label_w, value_w = 1080, 240, 90
    plot_x, plot_w = label_w, width - label_w - value_w
    bar_h, row_h, head_h, pad = 15, 22, 24, 8
    values = [b.value for g in groups for b in g.bars if b.value is not None]
    whiskers = [b.whisker for g in groups for b in g.bars if b.whisker is not None]
    ticks = nice_ticks(max([*values, *whiskers], default=0.0))
    top = ticks[-1]

    def x(v: float) -> float:
        return plot_x + plot_w * (v / top if top else 0)

    parts: list[str] = []
    y = pad
    for group in groups:
        if group.label is not None:
            parts.append(
                f'<text class="grp" x="0" y="{y + 16}">{e(shorten(group.label, 60))}'
                f"<title>{e(group.label)}</title></text>"
            )
            y += head_h
        for bar in group.bars:
            cy = y + row_h / 2
            cls = "grp" if bold_labels else "lbl"
            parts.append(
                f'<text class="{cls}" x="{label_w - 10}" y="{cy + 4:.1f}" text-anchor="end">'
                f"{e(shorten(bar.label, 30))}<title>{e(bar.label)}</title></text>"
            )
            tip = e(bar.tooltip or f"{bar.label}: {fmt_num(bar.value)} {unit}")
            if bar.value is None:
                parts.append(
                    f'<text class="val na" x="{plot_x + 4}" y="{cy + 4:.1f}">{DASH}'
                    f"<title>{tip}</title></text>"
                )
                y += row_h
                continue
            w = max(x(bar.value) - plot_x, 1.5)
            parts.append(
                f'<rect class="bar s{bar.series % N_SERIES}" x="{plot_x}" '
                f'y="{cy - bar_h / 2:.1f}" width="{w:.1f}" height="{bar_h}" rx="2">'
                f"<title>{tip}</title></rect>"
            )
            end = plot_x + w
            if bar.whisker is not None and bar.whisker > bar.value:
                wx = x(bar.whisker)
                parts.append(
                    f'<path class="whisker" d="M{end:.1f},{cy:.1f}H{wx:.1f}'
                    f'M{wx:.1f},{cy - 4:.1f}V{cy + 4:.1f}"><title>p95 {fmt_num(bar.whisker)} '
                    f"{e(unit)}</title></path>"
                )
                end = wx
            parts.append(
                f'<text class="val" x="{end + 5:.1f}" y="{cy + 4:.1f}">{e(fmt_num(bar.value))}'
                "</text>"
            )
            y += row_h
        y += pad
    plot_bottom = y
    grid = []
    for tick in ticks:
        tx = x(tick)
        cls = "baseline" if tick == 0 else "gridline"
        grid.append(
            f'<line class="{cls}" x1="{tx:.1f}" x2="{tx:.1f}" y1="{pad / 2}" y2="{plot_bottom}"/>'
        )
        grid.append(
            f'<text class="axis" x="{tx:.1f}" y="{plot_bottom + 15}" text-anchor="middle">'
            f"{_tick_label(tick)}</text>"
        )
    grid.append(
        f'<text class="axis" x="{plot_x + plot_w}" y="{plot_bottom + 31}" text-anchor="end">'
        f"{e(unit)}</text>"
    )
    height = plot_bottom + 38
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" style="max-width:{width}px" '
        f'role="img" aria-label="{e(description)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{e(description)}</title>{''.join(grid)}{''.join(parts)}</svg>"
    )


def line_chart(
    levels: Sequence[int],
    series: Sequence[tuple[str, Mapping[int, float | None]]],
    x_label: str,
    y_label: str,
    description: str,
) -> str:
    """One line per series over categorical x values (the concurrency levels), as SVG."""
    width, height = 1080, 340
    left, right, top_pad, bottom = 64, 24, 16, 52
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    values = [v for _, points in series for v in points.values() if v is not None]
    ticks = nice_ticks(max(values, default=0.0))
    top = ticks[-1]
    step = plot_w / max(len(levels) - 1, 1)

    def px(i: int) -> float:
        return left + (i * step if len(levels) > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top_pad + plot_h * (1 - (v / top if top else 0))

    parts: list[str] = []
    for tick in ticks:
        cls = "baseline" if tick == 0 else "gridline"
        parts.append(
            f'<line class="{cls}" x1="{left}" x2="{left + plot_w}" y1="{py(tick):.1f}" '
            f'y2="{py(tick):.1f}"/>'
            f'<text class="axis" x="{left - 8}" y="{py(tick) + 4:.1f}" text-anchor="end">'
            f"{_tick_label(tick)}</text>"
        )
    for i, level in enumerate(levels):
        parts.append(
            f'<text class="axis" x="{px(i):.1f}" y="{top_pad + plot_h + 18}" '
            f'text-anchor="middle">{level}</text>'
        )
    parts.append(
        f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        f"{e(x_label)}</text>"
        f'<text class="axis" transform="translate(14 {top_pad + plot_h / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle">{e(y_label)}</text>'
    )
    for s, (name, points) in enumerate(series):
        cls = f"s{s % N_SERIES}"
        coords: list[tuple[float, float]] = []
        for i, level in enumerate(levels):
            point = points.get(level)
            if point is not None:
                coords.append((px(i), py(point)))
        if len(coords) > 1:
            d = "M" + "L".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(f'<path class="line {cls}" d="{d}"><title>{e(name)}</title></path>')
        for i, level in enumerate(levels):
            value = points.get(level)
            if value is None:
                continue
            parts.append(
                f'<circle class="dot {cls}" cx="{px(i):.1f}" cy="{py(value):.1f}" r="4.5">'
                f"<title>{e(name)} · {e(x_label)} {level}: {e(fmt_num(value))} {e(y_label)}"
                "</title></circle>"
            )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" style="max-width:{width}px" '
        f'role="img" aria-label="{e(description)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{e(description)}</title>{''.join(parts)}</svg>"
    )


# ---------------------------------------------------------------------------------------------
# Sections


def _header(doc: RunDocument) -> str:
    status = doc_status(doc)  # "complete, 30 failed" in amber, not a green "complete"
    shown = t("report.status")  # the badge next to the title shows it already
    facts = "".join(
        f"<div><dt>{e(label)}</dt><dd>{e(value)}</dd></div>"
        for label, value in header_facts(doc)
        if label != shown
    )
    config = "".join(f"<code>{e(config_label(k))} {e(v)}</code> " for k, v in config_items(doc))
    demo = (
        f'<p class="demo-banner" role="note">{e(t("report.demo_banner"))}</p>'
        if doc.get("demo")
        else ""
    )
    return (
        "<header>"
        f'<p class="eyebrow">ollamakit · {e(t("report.title"))}</p>'
        f'<h1>{e(title(doc))} <span class="badge status-{e(status.status)} tone-{status.tone}">'
        f"{e(status.text)}</span></h1>"
        f"{demo}"
        f'<dl class="facts">{facts}</dl>'
        f'<p class="config">{e(t("report.config"))}: {config or DASH}</p>'
        "</header>"
    )


def _kpis(doc: RunDocument) -> str:
    results = doc.get("results") or []
    rows = summary_rows(doc)
    n = len(results) or sum(int(r.get("n", 0)) for r in rows)
    ok = (
        sum(1 for r in results if r.get("ok"))
        if results
        else sum(int(r.get("ok", 0)) for r in rows)
    )
    models = model_order(rows) or model_order(results)
    prompts = {r.get("prompt_id") for r in rows}
    cards = [
        (t("report.kpi_models"), str(len(models)), t("report.kpi_prompts", n=len(prompts)), ""),
        (
            t("report.kpi_requests"),
            f"{ok}/{n}",
            t("report.kpi_failed", n=n - ok) if n - ok else t("report.kpi_all_ok"),
            "" if ok == n else ("bad" if ok * 2 < n else "warn"),
        ),
    ]
    best = per_model_eval_tps(doc)
    if best and best[0][1] is not None:
        cards.append(
            (
                t("report.kpi_fastest"),
                f"{fmt_num(best[0][1])} <small>tok/s</small>",
                best[0][0],
                "",
            )
        )
    ttfts = [(metric(r, "ttft_ms"), r) for r in base_rows(doc)]
    known = [(v, r) for v, r in ttfts if v is not None]
    if known:
        lowest, row = min(known, key=lambda item: item[0])
        cards.append(
            (
                t("report.kpi_ttft"),
                f"{fmt_num(lowest)} <small>ms</small>",
                f"{row.get('model', '')} · {row.get('prompt_id', '')}",
                "",
            )
        )
    network = [
        r.get("network_ms") for r in results if r.get("ok") and is_number(r.get("network_ms"))
    ]
    totals = [r.get("total_ms") for r in results if r.get("ok") and is_number(r.get("total_ms"))]
    if network:
        net = statistics.median(float(v) for v in network if v is not None)
        total = statistics.median(float(v) for v in totals if v is not None) if totals else None
        share = t("report.kpi_network_share", pct=fmt_num(100 * net / total, 1)) if total else ""
        cards.append((t("report.kpi_network"), f"{fmt_num(net)} <small>ms</small>", share, ""))
    html_cards = []
    for key, value, sub, tone in cards:
        # ``value`` holds only numbers we formatted and a fixed <small> unit: not escaped.
        html_cards.append(
            f'<div class="kpi {tone}"><div class="k">{e(key)}</div>'
            f'<div class="v">{value}</div><div class="s">{e(sub)}</div></div>'
        )
    label = e(t("report.kpi_title"))
    return f'<section class="kpis" aria-label="{label}">{"".join(html_cards)}</section>'


def _summary(doc: RunDocument) -> str:
    rows = summary_rows(doc)
    swept = len(concurrency_levels(doc)) > 1
    head = _th(t("report.col_model")) + _th(t("report.col_prompt"))
    if swept:
        head += _th(t("report.col_concurrency_short"), True)
    columns = summary_columns(doc)  # the same columns as the terminal and Markdown
    head += "".join(_th(column.label, True) for column in columns)
    top = max((metric(r, "eval_tps") or 0.0 for r in rows), default=0.0)
    body: list[str] = []
    for block in _blocks(rows):
        for j, row in enumerate(block):
            cells = ""
            if j == 0:
                cells += f'<td class="model" rowspan="{len(block)}">{e(row.get("model", ""))}</td>'
            cells += f'<td class="name">{e(row.get("prompt_id", ""))}</td>'
            if swept:
                cells += f'<td class="num">{e(row.get("concurrency", 1))}</td>'
            for column in columns:
                value = summary_cell(doc, row, column)
                if column.key == "ok":
                    cells += _okn_td(int(row.get("ok", 0)), int(row.get("n", 0)))
                    continue
                na = " na" if value.startswith(DASH) else ""
                if column.key == "eval_rate":
                    eval_tps = metric(row, "eval_tps")
                    bar = f' style="--w:{100 * eval_tps / top:.1f}%"' if eval_tps and top else ""
                    cells += f'<td class="num databar{na}"{bar}>{e(value)}</td>'
                else:
                    cells += f'<td class="num{na}">{e(value)}</td>'
            body.append(f"<tr{_GROUP_START if j == 0 and body else ''}>{cells}</tr>")
    notes = [t("report.summary_computed")] if summary_is_computed(doc) else []
    notes.append(t("report.columns_note", rtt=rtt_text(doc)))
    if any(column.key == "clean_eof" for column in columns):
        notes.append(t("report.clean_eof_note"))
    note = "".join(f'<p class="note">{e(n)}</p>' for n in notes)
    return (
        f'<section id="summary"><h2>{e(t("report.summary_title"))}</h2>'
        f"{_table(head, body)}{note}</section>"
    )


_GROUP_START: Final = ' class="group-start"'
_FAIL: Final = ' class="fail"'


def _blocks(rows: Sequence[_R]) -> list[list[_R]]:
    """Consecutive rows of the same model, for a model cell spanning them."""
    blocks: list[list[_R]] = []
    for row in rows:
        if blocks and blocks[-1][0].get("model") == row.get("model"):
            blocks[-1].append(row)
        else:
            blocks.append([row])
    return blocks


def _charts(doc: RunDocument) -> str:
    figures: list[str] = []
    per_model = per_model_eval_tps(doc)
    if any(v is not None for _, v in per_model):
        groups = [BarGroup(None, [Bar(m, v, 0) for m, v in per_model])]
        desc = t("report.chart_eval_model")
        figures.append(
            f"<figure><figcaption>{e(desc)} "
            f'<span class="muted">{e(t("report.chart_eval_model_note"))}</span></figcaption>'
            f"{bar_chart(groups, 'tok/s', desc, True)}</figure>"
        )
    rows = base_rows(doc)
    prompts = list(dict.fromkeys(r.get("prompt_id", "") for r in rows))
    index = {p: i for i, p in enumerate(prompts)}
    if len(prompts) > 1 or len(model_order(rows)) > 1:
        for key, note_key, unit, stat_whisker in (
            ("eval_tps", "report.chart_eval_prompt", "tok/s", False),
            ("ttft_ms", "report.chart_ttft", "ms", True),
        ):
            groups = []
            for model in model_order(rows):
                bars = [
                    Bar(
                        r.get("prompt_id", ""),
                        metric(r, key),
                        index[r.get("prompt_id", "")],
                        metric(r, key, "p95") if stat_whisker else None,
                    )
                    for r in rows
                    if r.get("model") == model
                ]
                groups.append(BarGroup(model, bars))
            if not any(b.value is not None for g in groups for b in g.bars):
                continue
            desc = t(note_key)
            figures.append(
                f"<figure><figcaption>{e(desc)}</figcaption>{_legend(prompts)}"
                f"{bar_chart(groups, unit, desc, False)}</figure>"
            )
    conc = concurrency_rows(doc)
    levels = sorted({int(r.get("concurrency", 1)) for r in conc})
    if len(levels) > 1:
        models = model_order(conc)
        series = [
            (
                m,
                {
                    int(r.get("concurrency", 1)): (
                        float(cast(float, r["output_tps"]))
                        if is_number(r.get("output_tps"))
                        else None
                    )
                    for r in conc
                    if r.get("model") == m
                },
            )
            for m in models
        ]
        desc = t("report.chart_concurrency")
        figures.append(
            f"<figure><figcaption>{e(desc)}</figcaption>{_legend(models)}"
            f"{line_chart(levels, series, t('report.col_concurrency'), 'tok/s', desc)}</figure>"
        )
    if not figures:
        return ""
    return (
        f'<section id="charts"><h2>{e(t("report.charts_title"))}</h2>{"".join(figures)}</section>'
    )


def _concurrency(doc: RunDocument) -> str:
    rows = concurrency_rows(doc)
    if not rows:
        return ""
    head = _th(t("report.col_model")) + "".join(
        _th(t(k), True)
        for k in (
            "report.col_concurrency",
            "report.col_output_tps",
            "report.col_scaling",
            "report.col_requests_per_s",
            "report.col_ttft_median",
            "report.col_ttft_p95",
            "report.col_itl_p95",
            "report.col_ok",
        )
    )
    base: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: r.get("concurrency", 0)):
        tps = row.get("output_tps")
        if is_number(tps) and tps and row.get("model", "") not in base:
            base[row.get("model", "")] = float(tps)
    body: list[str] = []
    for block in _blocks(rows):
        for j, row in enumerate(block):
            body.append(_concurrency_row(row, base, j, len(block), bool(body)))
    return (
        f'<section id="concurrency"><h2>{e(t("report.concurrency_title"))}</h2>'
        f'{_table(head, body)}<p class="note">{e(t("report.concurrency_note"))}</p></section>'
    )


def _concurrency_row(
    row: ConcurrencyRow, base: Mapping[str, float], j: int, span: int, after_first: bool
) -> str:
    model = row.get("model", "")
    tps = row.get("output_tps")
    scaling = f"×{float(tps) / base[model]:.2f}" if tps is not None and base.get(model) else DASH
    model_cell = f'<td class="model" rowspan="{span}">{e(model)}</td>' if j == 0 else ""
    return (
        f"<tr{_GROUP_START if j == 0 and after_first else ''}>{model_cell}"
        f'<td class="num">{e(row.get("concurrency", ""))}</td>'
        f'{_num_td(tps)}<td class="num">{e(scaling)}</td>'
        f"{_num_td(row.get('requests_per_s'))}{_num_td(metric(row, 'ttft_ms'))}"
        f"{_num_td(metric(row, 'ttft_ms', 'p95'))}{_num_td(metric(row, 'itl_p95_ms'))}"
        f"{_okn_td(int(row.get('ok', 0)), int(row.get('requests', 0)))}</tr>"
    )


def _cold_loads(doc: RunDocument) -> str:
    loads, warm = cold_loads(doc)
    if not loads and not warm:
        return ""
    table = ""
    if loads:
        head = _th(t("report.col_model")) + _th(t("report.col_load_ms"), True)
        body = [
            f'<tr><td class="model">{e(x.get("model", ""))}</td>{_num_td(x.get("load_ms"))}</tr>'
            for x in loads
        ]
        table = _table(head, body)
    notes = [t("report.cold_loads_note")] if loads else []
    if warm:
        models = ", ".join(f"{x.get('model', '')} ({fmt_num(x.get('load_ms'))} ms)" for x in warm)
        notes.append(t("report.already_loaded_note", models=models))
    return (
        f'<section id="cold-loads"><h2>{e(t("report.cold_loads_title"))}</h2>{table}'
        + "".join(f'<p class="note">{e(note)}</p>' for note in notes)
        + "</section>"
    )


def _failures(doc: RunDocument) -> str:
    groups = failure_groups(doc)
    skipped = skipped_models(doc)
    out = ""
    if doc.get("status") == "failed" and doc.get("failure"):
        reason = t("report.run_failed_reason", reason=doc.get("failure") or "")
        out += f'<p class="note"><strong>{e(reason)}</strong></p>'
    if skipped:
        items = "".join(
            f'<li><strong>{e(model)}</strong>: <code class="err">{e(reason)}</code></li>'
            for model, reason in skipped
        )
        out += (
            f'<section id="skipped"><h2>{e(t("report.skipped_title", n=len(skipped)))}</h2>'
            f'<ul class="failures">{items}</ul></section>'
        )
    if groups:
        total = sum(n for _, _, n, _ in groups)
        items = "".join(
            f"<li><strong>{e(model)}</strong> "
            f"{e(t('report.failure_group', n=n, prompts=', '.join(prompts)))}: "
            f'<code class="err">{e(error)}</code></li>'
            for model, error, n, prompts in groups
        )
        out += (
            f'<section id="failures"><h2>{e(t("report.failures_count", n=total))}</h2>'
            f'<ul class="failures">{items}</ul></section>'
        )
    return out


def _hints(doc: RunDocument) -> str:
    hints = doc.get("hints") or []
    if not hints:
        return ""
    items = "".join(f"<li>{e(h)}</li>" for h in hints)
    return (
        f'<section id="hints"><h2>{e(t("report.hints_title"))}</h2>'
        f'<ul class="hints">{items}</ul></section>'
    )


def _requests(doc: RunDocument) -> str:
    results = doc.get("results") or []
    if not results:
        return ""
    head = (
        _th(t("report.col_model"))
        + _th(t("report.col_prompt"))
        + "".join(
            _th(t(k), True)
            for k in (
                "report.col_concurrency_short",
                "report.col_run",
                "report.col_ttft",
                "report.col_total_ms",
                "report.col_eval_tps",
                "report.col_prompt_tps",
                "report.col_tokens",
                "report.col_overhead_ms",
                "report.col_itl_p95",
            )
        )
        + _th(t("report.col_error"))
    )
    body = []
    for r in results:
        itl = r.get("itl_ms") or {}
        ok = bool(r.get("ok"))
        error = "" if ok else (r.get("error") or t("report.unknown_error"))
        body.append(
            f"<tr{'' if ok else _FAIL}>"
            f'<td class="name">{e(r.get("model", ""))}</td>'
            f'<td class="name">{e(r.get("prompt_id", ""))}</td>'
            f'<td class="num">{e(r.get("concurrency", 1))}</td>'
            f'<td class="num">{e(r.get("run_index", ""))}</td>'
            f"{_ttft_td(r)}{_num_td(r.get('total_ms'))}"
            f"{_num_td(r.get('eval_tps'))}{_num_td(r.get('prompt_tps'))}"
            f"{_int_td(r.get('eval_count'))}"
            f"{_num_td(r.get('client_overhead_ms'))}{_num_td(itl.get('p95'))}"
            f'<td class="err">{e(error)}</td></tr>'
        )
    n_failed = sum(1 for r in results if not r.get("ok"))
    summary = t("report.requests_summary", n=len(results), failed=n_failed)
    return (
        f'<section id="requests"><h2>{e(t("report.requests_title"))}</h2>'
        f"<details><summary>{e(summary)}</summary>{_table(head, body, 'requests')}</details>"
        "</section>"
    )


def render_html(doc: RunDocument) -> str:
    """The whole page, as a string."""
    lang = get_language()
    tool = doc.get("tool") or {}
    tool_text = f"{tool.get('name', 'ollamakit')} {tool.get('version', '')}".strip()
    page_title = f"{title(doc)} · {doc['server'].get('base_url', '')}"
    body = "".join(
        (
            _header(doc),
            "<main>",
            _kpis(doc),
            _summary(doc),
            _charts(doc),
            _concurrency(doc),
            _cold_loads(doc),
            _failures(doc),
            _hints(doc),
            _requests(doc),
            "</main>",
            f"<footer>{e(t('report.footer', tool=tool_text))}</footer>",
        )
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{e(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="color-scheme" content="light dark">\n'
        f'<meta name="generator" content="{e(tool_text)}">\n'
        f"<title>{e(page_title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
