"""Measuring replies: one recorder, the result format, statistics and formatters.

* :mod:`~ollamakit.measure.recorder` — :class:`ReplyRecorder` → :class:`ReplyMeasurement`,
  the one set of rules every tool measures a streamed reply with;
* :mod:`~ollamakit.measure.schema` — the benchmark result document (docs/result-format.md);
* :mod:`~ollamakit.measure.stats` — percentiles, summaries, summary and concurrency rows;
* :mod:`~ollamakit.measure.format` — one formatter per unit.

Depends only on :mod:`ollamakit.domain`; every tool above may use it.
"""

from __future__ import annotations

from ollamakit.measure.recorder import ItlPercentiles, ReplyMeasurement, ReplyRecorder
from ollamakit.measure.schema import Identity, empty_result

__all__ = ["Identity", "ItlPercentiles", "ReplyMeasurement", "ReplyRecorder", "empty_result"]
