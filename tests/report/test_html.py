"""The HTML report's structure, parsed with html.parser: sections, charts, escaping, privacy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import cast

import pytest

from ollamakit.i18n import set_language
from ollamakit.measure.schema import RunDocument
from ollamakit.report import render
from ollamakit.report.html import Bar, BarGroup, bar_chart, line_chart

VOID = {"meta", "link", "br", "hr", "img", "input", "col", "wbr", "source", "area", "base"}
SVG_LEAVES = {"rect", "line", "path", "circle"}  # written with their own closing tags or "/>"


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if child.tag == tag and all(
                v in child.attrs.get(k.rstrip("_"), "").split() for k, v in attrs.items()
            ):
                found.append(child)
            found += child.find_all(tag, **attrs)
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag} {attrs}>"
        return found[0]

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class TreeBuilder(HTMLParser):
    """A strict little DOM: fails on an unclosed or mismatched tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, text=data))


def parse(text: str) -> tuple[Node, TreeBuilder]:
    builder = TreeBuilder()
    builder.feed(text)
    builder.close()
    assert builder.stack == [builder.root], [n.tag for n in builder.stack]
    return builder.root, builder


def test_structure(doc: RunDocument) -> None:
    root, builder = parse(render(doc, "html"))
    assert builder.doctype.lower() == "doctype html"
    html = root.find("html")
    assert html.attrs["lang"] == "en"
    head = html.find("head")
    assert head.find("meta", charset="utf-8")
    csp = [
        m for m in head.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert csp and "default-src 'none'" in csp[0].attrs["content"]
    assert "Benchmark report: rtx4070 behind nginx" in head.find("title").all_text()

    header = root.find("header")
    text = header.all_text()
    for fact in ("https://ollama-user:***@gpu.example.com", "0.6.2", "1.84 ms", "2025-03-01"):
        assert fact in text
    assert "runs 3" in text and "concurrency 1,2,4" in text

    summary = root.find("section", id="summary")
    rows = summary.find("tbody").find_all("tr")
    assert len(rows) == len(doc["summary"])
    assert summary.find("td", class_="model").all_text() == "llama3.2:3b"
    assert "2/3" in [td.all_text() for td in summary.find_all("td", class_="okn")]

    charts = root.find("section", id="charts")
    svgs = charts.find_all("svg")
    assert len(svgs) == 4  # per model, per model and prompt, TTFT, concurrency
    for svg in svgs:
        assert svg.attrs["role"] == "img" and svg.attrs["aria-label"]
    bars = svgs[0].find_all("rect", class_="bar")
    assert len(bars) == 2  # one per model
    assert len(svgs[1].find_all("rect", class_="bar")) == 10  # 2 models x 5 prompts
    assert svgs[2].find_all("path", class_="whisker")  # TTFT p95
    assert len(svgs[3].find_all("circle", class_="dot")) == 6  # 2 models x 3 levels

    assert root.find("section", id="concurrency").find("tbody").find_all("tr")
    assert "2,144" in root.find("section", id="cold-loads").all_text()
    failures = root.find("section", id="failures").find_all("li")
    assert len(failures) == 1 and "HTTP 503" in failures[0].all_text()
    assert "OLLAMA_NUM_PARALLEL" in root.find("section", id="hints").all_text()

    details = root.find("section", id="requests").find("details")
    assert "42 requests (1 failed)" in details.find("summary").all_text()
    request_rows = details.find("tbody").find_all("tr")
    assert len(request_rows) == len(doc["results"])
    failed = [r for r in request_rows if r.attrs.get("class") == "fail"]
    assert len(failed) == 1 and "HTTP 503" in failed[0].all_text()


def test_an_already_loaded_model_is_a_note_not_a_cold_load(doc: RunDocument) -> None:
    doc["cold_loads"] = [
        {"model": "llama3.2:3b", "load_ms": 2143.7},
        {"model": "qwen2.5-coder:7b", "load_ms": 2.26},
    ]
    root, _ = parse(render(doc, "html"))
    section = root.find("section", id="cold-loads")
    models = [td.all_text() for td in section.find_all("td", class_="model")]
    assert models == ["llama3.2:3b"]
    notes = [p.all_text() for p in section.find_all("p")]
    assert any("qwen2.5-coder:7b (2.26 ms)" in note for note in notes)


def test_self_contained(doc: RunDocument) -> None:
    root, _ = parse(render(doc, "html"))
    assert not root.find_all("script") and not root.find_all("link") and not root.find_all("img")

    def walk(node: Node) -> None:
        for name, value in node.attrs.items():
            if name == "xmlns":
                continue  # a namespace name, never fetched
            assert "http:" not in value and "https:" not in value and "//" not in value, (
                node.tag,
                name,
                value,
            )
        for child in node.children:
            walk(child)

    walk(root)
    style = root.find("style").all_text()
    assert "@import" not in style and "url(" not in style and "@font-face" not in style
    assert "prefers-color-scheme: dark" in style and "@media print" in style


EVIL = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"


def test_untrusted_text_is_escaped(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(models=[EVIL, "llama3.2:3b"], label=f"label {EVIL}")
    doc["results"][1]["ok"] = False
    doc["results"][1]["error"] = f"error {EVIL}"
    doc["hints"] = [f"hint {EVIL}"]
    doc["results"][4]["prompt_id"] = EVIL
    text = render(doc, "html")
    assert "<script" not in text and "<img" not in text and "onerror=alert(1)>" not in text
    root, _ = parse(text)  # still well-formed
    assert not root.find_all("script") and not root.find_all("img")
    assert EVIL in root.find("section", id="summary").all_text()  # shown as text, intact
    assert f"error {EVIL}" in root.find("section", id="failures").all_text()
    assert f"hint {EVIL}" in root.find("section", id="hints").all_text()
    svg_titles = [t.all_text() for svg in root.find_all("svg") for t in svg.find_all("title")]
    assert any(EVIL in title for title in svg_titles)
    for node in root.find_all("td") + root.find_all("text"):
        assert not any(name.startswith("on") for name in node.attrs)


def test_traditional_chinese(doc: RunDocument) -> None:
    set_language("zh-TW")
    root, _ = parse(render(doc, "html"))
    assert root.find("html").attrs["lang"] == "zh-TW"
    assert "基準測試報告" in root.find("h1").all_text()
    assert "摘要" in root.find("section", id="summary").find("h2").all_text()


def test_without_sweep_failures_or_results(doc_factory: Callable[..., RunDocument]) -> None:
    doc = doc_factory(failed=False, sweep=False)
    root, _ = parse(render(doc, "html"))
    assert len(root.find("section", id="charts").find_all("svg")) == 3
    assert not root.find_all("section", id="concurrency")
    assert not root.find_all("section", id="failures")
    assert not root.find_all("section", id="hints")
    empty = cast(RunDocument, {**doc, "results": [], "summary": [], "cold_loads": []})
    root, _ = parse(render(empty, "html"))
    assert not root.find_all("svg") and not root.find_all("section", id="requests")


def test_a_single_model_and_prompt_has_just_the_model_chart(
    doc_factory: Callable[..., RunDocument],
) -> None:
    doc = doc_factory(models=["llama3.2:3b"], sweep=False)
    results = [r for r in doc["results"] if r["prompt_id"] == "code"]
    one = cast(RunDocument, {**doc, "results": results, "summary": []})
    root, _ = parse(render(one, "html"))
    assert len(root.find("section", id="charts").find_all("svg")) == 1


def test_charts_handle_nulls_and_zeroes() -> None:
    svg = bar_chart([BarGroup(None, [Bar("a", None), Bar("b", 0.0)])], "tok/s", "d", True)
    root, _ = parse(svg)
    assert "—" in root.all_text()
    svg = line_chart([1, 2], [("m", {1: None, 2: None})], "c", "tok/s", "d")
    parse(svg)


@pytest.mark.parametrize("value", [0.0004, 3.2, 98765.4])
def test_axis_covers_the_largest_value(value: float) -> None:
    svg = bar_chart([BarGroup(None, [Bar("a", value, whisker=value * 1.5)])], "ms", "d", True)
    root, _ = parse(svg)
    rect = root.find("rect", class_="bar")
    assert 0 < float(rect.attrs["width"]) <= 1080 - 240 - 90
