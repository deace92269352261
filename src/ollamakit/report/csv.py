"""CSV report (``--output run.csv``): one row per measured request, for spreadsheets and pandas.

Columns are the :class:`RequestResult` field names (machine names with units, never
translated), prefixed by ``run_id`` so files of several runs can be concatenated; the
``itl_ms`` percentiles become ``itl_p50_ms``/``itl_p95_ms``/``itl_p99_ms``. Extension fields
follow, then any field this version does not know (sorted), so nothing is dropped.
``null`` is an empty cell, booleans are ``true``/``false``, floats keep full precision.

Text that a spreadsheet would run as a formula (a model name or error text starting with
``=``, ``+``, ``-``, ``@``, also after leading spaces, tabs or line breaks, or starting with a
tab, CR or LF) is prefixed with ``'`` (OWASP's CSV-injection advice); numbers are never
touched.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any, Final

from ollamakit.measure.schema import RESULT_SCALAR_FIELDS, RunDocument

COLUMNS: Final = (
    "run_id",
    *RESULT_SCALAR_FIELDS,
    "itl_p50_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "ttft_thinking_ms",
    "thinking_chunks",
    "done_reason",
    "started_at",
    # issue 9: how the reply ended and what the numbers may be trusted for
    "end",
    "buffered",
    "reads",
    "prompt_tps_absent",
    "client_overhead_ms",
)


#: A formula starts with one of these, possibly after whitespace a spreadsheet skips.
_FORMULA: Final = ("=", "+", "-", "@")
_WHITESPACE: Final = " \t\r\n\v\f\u00a0\u3000"
_LEADING_CONTROL: Final = ("\t", "\r", "\n", "\v", "\f")


def cell(value: object) -> str:
    """One CSV cell.

    >>> [cell(v) for v in (None, True, 3, 0.1 + 0.2, "ok", "=cmd()", "-1 bad")]
    ['', 'true', '3', '0.30000000000000004', 'ok', "'=cmd()", "'-1 bad"]
    >>> [cell(v) for v in ("\\r=cmd()", " \\t+1", "\\nx", "a=b")]
    ["'\\r=cmd()", "' \\t+1", "'\\nx", 'a=b']
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value).decode()
    text = str(value)
    if text[:1] in _LEADING_CONTROL or text.lstrip(_WHITESPACE)[:1] in _FORMULA:
        return "'" + text
    return text


def _flatten(run_id: str, result: Mapping[str, Any]) -> dict[str, object]:
    row: dict[str, object] = {"run_id": run_id}
    for key, value in result.items():
        if key == "itl_ms" and isinstance(value, Mapping):
            for p in ("p50", "p95", "p99"):
                row[f"itl_{p}_ms"] = value.get(p)
        else:
            row[key] = value
    return row


def render_csv(doc: RunDocument) -> str:
    rows = [_flatten(doc.get("run_id", ""), r) for r in doc.get("results") or []]
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    columns = [*COLUMNS, *extra]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return buffer.getvalue()
