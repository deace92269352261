"""``--baseline RUN --fail-on-regression 10%``: a regression gate for CI (bench and load).

::

    ollamakit bench --auto --model llama3.2 --runs 5 --baseline 3f2a --fail-on-regression 10%
    ollamakit load --model llama3.2 --users 1,4 --baseline 3f2a --fail-on-regression 10% \\
        --verdict verdict.md

After the run, the new run is compared with the baseline from the history using the same
statistical comparison as ``history compare`` (:func:`ollamakit.report.compare.compare_stats`:
Mann-Whitney U on every request's value, per cell and metric). Bench cells are (model,
prompt, concurrency), load cells (model, level): a load run is checked level by level.

A cell and metric *fails* when the difference is significant (p < alpha) **and** the median
moved in the bad direction by more than the threshold (:func:`~ollamakit.report.compare.
gate_failures`). Each failure is named on stderr with n, both medians, the change and p; the
exit status becomes 1 (:data:`ExitStatus.FAILURES`), as for failed requests.

The Markdown verdict (for a pull-request comment) goes to ``--verdict FILE.md``; without it,
next to the first ``--output`` ending in ``.md`` (``report.md`` → ``report.verdict.md``).

Everything that can go wrong with the baseline fails before the run (exit 2): an unknown or
ambiguous run id, ``--no-save`` with nothing to read it from, ``--fail-on-regression`` without
``--baseline``, an unreadable threshold. An interrupted run is not judged (it exits 130).
With very few requests per cell (3 or fewer a side) no test can reach p < 0.05; the verdict
says so instead of passing silently.
"""

from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
from pathlib import Path

from rich.markup import escape

from ollamakit.config import Settings
from ollamakit.errors import ExitStatus, OllamakitError, UsageError
from ollamakit.i18n import t
from ollamakit.measure import format as fmt
from ollamakit.measure.schema import RunDocument
from ollamakit.report.compare import (
    ALPHA,
    StatComparison,
    StatRow,
    Verdict,
    compare_stats,
    gate_failures,
    parse_percent,
    underpowered,
    worse_by_pct,
)
from ollamakit.report.markdown import code, text
from ollamakit.ui.terminal import Terminal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's flags, the same for ``bench`` and ``load``."""
    group = parser.add_argument_group(t("regress.group"))
    group.add_argument("--baseline", metavar="RUN", default=None, help=t("regress.help_baseline"))
    group.add_argument(
        "--fail-on-regression",
        metavar="PERCENT",
        default=None,
        help=t("regress.help_fail_on_regression").replace("%", "%%"),  # argparse formats %
    )
    group.add_argument("--verdict", metavar="FILE.md", default=None, help=t("regress.help_verdict"))


@dataclass(frozen=True)
class Gate:
    """The baseline (read before the run) and what to do with the comparison."""

    baseline: RunDocument
    threshold_pct: float | None  # None: compare and report, never fail
    verdict_path: Path | None
    alpha: float = ALPHA


def prepare(args: argparse.Namespace, settings: Settings) -> Gate | None:
    """Validate the flags and read the baseline; ``None`` without ``--baseline``."""
    baseline_id: str | None = getattr(args, "baseline", None)
    threshold_text: str | None = getattr(args, "fail_on_regression", None)
    verdict: str | None = getattr(args, "verdict", None)
    if baseline_id is None:
        if threshold_text is not None or verdict is not None:
            raise UsageError(t("regress.needs_baseline"))
        return None
    threshold: float | None = None
    if threshold_text is not None:
        try:
            threshold = parse_percent(threshold_text)
        except ValueError:
            raise UsageError(t("regress.bad_percent", value=threshold_text)) from None
    from ollamakit.store import HistoryStore

    if not HistoryStore.exists(settings.home):
        raise UsageError(t("report.unknown_run", run_id=baseline_id))
    with HistoryStore.open(settings.home) as store:
        doc = store.load_run(baseline_id)  # unknown / ambiguous: UsageError, exit 2
    if not doc.get("results"):
        raise UsageError(t("regress.empty_baseline", run_id=doc["run_id"]))
    return Gate(doc, threshold, _verdict_path(verdict, getattr(args, "output", None) or []))


def _verdict_path(verdict: str | None, outputs: list[str]) -> Path | None:
    """``--verdict FILE``, else next to the first Markdown ``--output``.

    >>> _verdict_path(None, ["run.json", "out/report.md"])
    PosixPath('out/report.verdict.md')
    >>> _verdict_path("v.md", ["report.md"]), _verdict_path(None, ["-"])
    (PosixPath('v.md'), None)
    """
    if verdict is not None:
        return Path(verdict)
    for output in outputs:
        path = Path(output)
        if str(output) != "-" and path.suffix.lower() == ".md":
            return path.with_name(path.stem + ".verdict.md")
    return None


def check(gate: Gate, doc: RunDocument, terminal: Terminal, status: int) -> int:
    """Compare ``doc`` with the baseline, report, write the verdict; the new exit status.

    ``status`` is the command's status so far: the gate can only make it worse (0 → 1), and
    leaves an interrupted run (130) unjudged.
    """
    if doc["status"] == "interrupted" or status == int(ExitStatus.INTERRUPTED):
        return status
    comparison = compare_stats(gate.baseline, doc, alpha=gate.alpha)
    failing = (
        gate_failures(comparison, gate.threshold_pct) if gate.threshold_pct is not None else []
    )
    with contextlib.suppress(OSError, SystemExit):
        _print(comparison, failing, gate, terminal)
    if gate.verdict_path is not None:
        from ollamakit.report import atomic_write

        markdown = verdict_markdown(comparison, gate, failing)
        try:
            atomic_write(gate.verdict_path, markdown.encode("utf-8"))
        except OllamakitError as exc:  # the run is saved: report it, fail the job
            terminal.print_error(exc)
            status = max(status, int(ExitStatus.FAILURES))
        else:
            terminal.info(t("regress.wrote_verdict", path=str(gate.verdict_path)))
    if not comparison.rows:
        return max(status, int(ExitStatus.ERROR)) if gate.threshold_pct is not None else status
    if failing:
        return max(status, int(ExitStatus.FAILURES))
    return status


def describe_failure(row: StatRow) -> str:
    """``ttft_ms of fast:1b · hi · c=1: n 5/5, median 40.1 → 80.3 (+100.2%), p 0.008``."""
    p = DASH_P if row.test is None else f"{row.test.p_value:.3g}"
    return t(
        "regress.failure",
        metric=row.metric,
        cell=row.cell,
        n_a=row.n_a,
        n_b=row.n_b,
        median_a=fmt.number(row.median_a, 1),
        median_b=fmt.number(row.median_b, 1),
        change=fmt.percent(row.change, signed=True),
        p=p,
    )


DASH_P = "—"


def _print(
    comparison: StatComparison, failing: list[StatRow], gate: Gate, terminal: Terminal
) -> None:
    baseline = comparison.run_a["run_id"]
    if not comparison.rows:
        terminal.warn(t("regress.nothing_in_common", run_id=baseline))
        return
    if underpowered(comparison):
        terminal.warn(t("regress.underpowered", alpha=f"{comparison.alpha:g}"))
    if gate.threshold_pct is None:
        worse = len(comparison.regressions)
        terminal.info(t("regress.compared", run_id=baseline, cells=_cells(comparison), worse=worse))
        return
    threshold = f"{gate.threshold_pct:g}%"
    if not failing:
        terminal.info(
            t("regress.passed", run_id=baseline, cells=_cells(comparison), threshold=threshold)
        )
        return
    terminal.stderr.print(
        "[bold red]✘ "
        + escape(t("regress.failed", count=len(failing), run_id=baseline, threshold=threshold))
        + "[/]"
    )
    for row in failing:
        terminal.stderr.print("  " + escape(describe_failure(row)))


def _cells(comparison: StatComparison) -> int:
    return len({r.cell for r in comparison.rows})


def verdict_markdown(comparison: StatComparison, gate: Gate, failing: list[StatRow]) -> str:
    """The verdict for a pull-request comment: one line of outcome, then the evidence.

    Failing rows first (bold), then every other row whose verdict is "worse" or "better";
    rows without a significant difference are counted, not listed.
    """
    a, b = comparison.run_a, comparison.run_b
    threshold = None if gate.threshold_pct is None else f"{gate.threshold_pct:g}%"
    if not comparison.rows:
        headline = "⚠️ " + t("regress.md_nothing", run_id=a["run_id"])
    elif failing:
        headline = "❌ " + t("regress.md_failed", count=len(failing), threshold=threshold)
    elif threshold is not None:
        headline = "✅ " + t("regress.md_passed", threshold=threshold)
    else:
        headline = "ℹ️ " + t("regress.md_compared", worse=len(comparison.regressions))
    lines = [
        f"### {text(t('regress.md_title'))}",
        "",
        f"**{text(headline)}**",
        "",
        text(
            t(
                "regress.md_runs",
                baseline=a["run_id"],
                candidate=b["run_id"],
                alpha=f"{comparison.alpha:g}",
                cells=_cells(comparison),
            )
        ),
        "",
    ]
    if underpowered(comparison) and comparison.rows:
        lines += [f"> {text(t('regress.underpowered', alpha=f'{comparison.alpha:g}'))}", ""]
    shown = failing + [
        r
        for r in comparison.rows
        if r not in failing and r.verdict in (Verdict.WORSE, Verdict.BETTER)
    ]
    if shown:
        header = [
            t("load.compare_cell"),
            t("load.compare_metric"),
            "n",
            t("load.compare_median_a"),
            t("load.compare_median_b"),
            t("load.compare_change"),
            "p",
            t("load.compare_verdict"),
        ]
        lines.append("| " + " | ".join(text(h) for h in header) + " |")
        lines.append("|:--|:--|--:|--:|--:|--:|--:|:--|")
        for row in shown:
            verdict = t(f"load.verdict_{row.verdict.value}") if row.verdict else DASH_P
            verdict = f"**{text(t('regress.md_fails'))}**" if row in failing else text(verdict)
            p = DASH_P if row.test is None else f"{row.test.p_value:.3g}"
            lines.append(
                "| "
                + " | ".join(
                    [
                        code(row.cell),
                        code(row.metric),
                        f"{row.n_a}/{row.n_b}",
                        fmt.number(row.median_a, 1),
                        fmt.number(row.median_b, 1),
                        fmt.percent(row.change, signed=True),
                        p,
                        verdict,
                    ]
                )
                + " |"
            )
        lines.append("")
    same = sum(1 for r in comparison.rows if r not in shown)
    if same:
        lines += [text(t("regress.md_same", count=same)), ""]
    worse_only = [r for r in comparison.regressions if r not in failing]
    if threshold is not None and worse_only:
        small = max((worse_by_pct(r) or 0.0) for r in worse_only)
        lines += [
            text(t("regress.md_below", count=len(worse_only), largest=f"{small:.1f}%")),
            "",
        ]
    return "\n".join(lines)


__all__ = ["Gate", "add_arguments", "check", "describe_failure", "prepare", "verdict_markdown"]
