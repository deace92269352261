"""Rendering benchmark runs: terminal tables, JSON, CSV, Markdown and HTML files.

Everything here reads one :class:`~ollamakit.measure.schema.RunDocument` (from a finished
benchmark, or rebuilt by :class:`~ollamakit.store.HistoryStore`) and nothing else::

    write_output(doc, Path("run.html"))       # format by extension, written atomically
    render(doc, "md")                         # the same text, for stdout

Modules: ``common`` (formatting shared by all), ``tables`` (rich, the terminal summary),
``markdown``, ``csv``, ``html``, ``compare`` (two runs side by side), and the two commands,
``cli`` (``ollamakit report``) and ``history_cli`` (``ollamakit history``).

Credentials: every document is passed through :func:`ollamakit.store.scrub` before it is
rendered, so even a producer's mistake cannot put a password in a report file.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Final

import orjson

from ollamakit.errors import UsageError
from ollamakit.i18n import t
from ollamakit.measure.schema import RunDocument
from ollamakit.redact import scrub

#: Output formats by file extension.
EXTENSIONS: Final = {
    ".json": "json",
    ".csv": "csv",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
}
FORMATS: Final = ("json", "csv", "md", "html")


def output_format(path: Path) -> str:
    """The format a path asks for, by extension; UsageError for any other extension.

    Call it before a long benchmark to reject ``--output run.pdf`` up front. ``-`` is JSON on
    standard output.
    """
    if str(path) == "-":
        return "json"
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise UsageError(
            t("report.unknown_format", path=str(path), formats=", ".join(sorted(EXTENSIONS)))
        )
    return fmt


def render_json(doc: RunDocument) -> str:
    """The document exactly as design.md specifies it (orjson, 2-space indent)."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def render(doc: RunDocument, fmt: str) -> str:
    """The text of one format: ``json``, ``csv``, ``md`` or ``html``."""
    clean = scrub(doc)
    if fmt == "json":
        return render_json(clean)
    if fmt == "csv":
        from ollamakit.report.csv import render_csv

        return render_csv(clean)
    if fmt == "md":
        from ollamakit.report.markdown import render_markdown
        from ollamakit.report.servers import labelled, markdown_side_by_side

        side = markdown_side_by_side(clean)  # servers compared: their columns too
        return render_markdown(labelled(clean)) + (f"\n{side}" if side else "")
    if fmt == "html":
        from ollamakit.report.html import render_html
        from ollamakit.report.servers import html_side_by_side, labelled

        page = render_html(labelled(clean))
        return page.replace("<main>", "<main>" + html_side_by_side(clean), 1)
    raise UsageError(t("report.unknown_format", path=fmt, formats=", ".join(FORMATS)))


def write_output(doc: RunDocument, path: Path) -> None:
    """Write ``doc`` to ``path`` in the format its extension names.

    The file is written to a temporary name in the same directory and renamed into place, so a
    reader (or a crash) never sees half a report; missing parent directories are created.
    """
    path = Path(path)
    text = render(doc, output_format(path))
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    atomic_write(path, text.encode("utf-8"))


def atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(
            t("report.write_failed", path=str(path), error=exc.strerror or exc)
        ) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UsageError(
                t("report.write_failed", path=str(path), error=exc.strerror or exc)
            ) from None
        raise


__all__ = ["EXTENSIONS", "FORMATS", "output_format", "render", "render_json", "write_output"]
