"""How a run ended, in words and in one of three tones: the same answer in every format.

A run's ``status`` alone says too little: ``complete`` only means the plan ran to its end,
even when 30 of its 50 requests failed, and ``interrupted`` does not say how much of the plan
was done. :func:`run_status` combines the status with the counts, so a run with failures says
so (``complete, 30 failed``, amber) and a stopped one says how far it got (``interrupted after
9 of 45 requests``). The HTML badge, the Markdown and terminal headers and ``ollamakit
history`` all use it.

Tones: ``ok`` (green) a complete run without failures; ``warn`` (amber) failures, a stop or a
run still going; ``bad`` (red) nothing succeeded or the run failed as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ollamakit.i18n import t
from ollamakit.measure.schema import RunDocument, planned_requests

Tone = Literal["ok", "warn", "bad"]

#: Terminal styles of the tones (rich), for the history listing.
TONE_STYLE: dict[str, str] = {"ok": "green", "warn": "yellow", "bad": "red"}


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What to show for a run's state."""

    status: str  # the document's status: running, complete, interrupted, failed
    text: str  # translated, with the counts that matter
    tone: Tone


def _plain_status(status: str) -> str:
    try:
        return t(f"report.status_{status}")
    except KeyError:
        return status


def run_status(status: str, *, done: int, failed: int, planned: int | None = None) -> RunStatus:
    """The state of a run with ``done`` measured requests, ``failed`` of them failed, out of
    ``planned``.

    >>> run_status("complete", done=50, failed=0).text
    'complete'
    >>> r = run_status("complete", done=50, failed=30)
    >>> r.text, r.tone
    ('complete, 30 failed', 'warn')
    >>> run_status("complete", done=4, failed=4).tone
    'bad'
    >>> run_status("interrupted", done=9, failed=0, planned=45).text
    'interrupted after 9 of 45 requests'
    """
    if status == "complete":
        if not failed:
            return RunStatus(status, _plain_status(status), "ok")
        if failed >= done:
            return RunStatus(status, t("report.status_complete_all_failed", failed=failed), "bad")
        return RunStatus(status, t("report.status_complete_failed", failed=failed), "warn")
    if status in ("interrupted", "running") and planned:
        key = f"report.status_{status}_after"
        text = t(key, done=done, planned=planned)
        if failed:
            text = t("report.status_with_failed", status=text, failed=failed)
        return RunStatus(status, text, "bad" if done and failed >= done else "warn")
    text = _plain_status(status)
    if failed and status != "failed":
        text = t("report.status_with_failed", status=text, failed=failed)
    return RunStatus(status, text, "bad" if status == "failed" else "warn")


def doc_status(doc: RunDocument) -> RunStatus:
    """:func:`run_status` of a result document."""
    results = doc.get("results") or []
    failed = sum(1 for r in results if not r.get("ok"))
    return run_status(
        str(doc.get("status") or "running"),
        done=len(results),
        failed=failed,
        planned=planned_requests(doc.get("config")),
    )


__all__ = ["TONE_STYLE", "RunStatus", "Tone", "doc_status", "planned_requests", "run_status"]
