"""One formatter per unit, so the same number reads the same in every tool.

Two kinds of places show numbers, and each unit has one function for each:

* running text carries its unit (``first token 183 ms``, ``✔ DNS 2.6 ms``): :func:`ms`,
  :func:`tps`, :func:`size`, :func:`duration`, :func:`percent`;
* table cells whose header holds the unit (``TTFT ms``) show a bare :func:`number` with the
  bench tables' adaptive precision (two decimals under 10, one under 100, none above, with a
  thousands separator). :func:`ms` uses the same precision below one second, then switches to
  seconds, because "12,346 ms" is not how people read a wait.

Unknown values (``None``, NaN, infinities) are :data:`DASH` everywhere.
"""

from __future__ import annotations

import math
from typing import Final

DASH: Final = "—"


def _known(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def number(value: object, digits: int | None = None) -> str:
    """A measurement for a table cell: more digits for small values, ``—`` when unknown.

    >>> [number(v) for v in (None, 0, 0.0421, 3.14159, 42.71, 245.3, 12345.6)]
    ['—', '0', '0.04', '3.14', '42.7', '245', '12,346']
    >>> number(1.5, digits=0), number(float("nan")), number(True)
    ('2', '—', '—')
    """
    known = _known(value)
    if known is None:
        return DASH
    if digits is None:
        size = abs(known)
        digits = 0 if known == 0 or size >= 100 else 1 if size >= 10 else 2
    return f"{known:,.{digits}f}"


def ms(value: float | None) -> str:
    """Milliseconds in running text: ms with adaptive precision, seconds from 1 s on.

    >>> [ms(v) for v in (0.3, 2.63, 42.4, 183.4, 999.4, 1420.0, 65_000, None)]
    ['0.30 ms', '2.6 ms', '42 ms', '183 ms', '999 ms', '1.42 s', '65.0 s', '—']
    """
    known = _known(value)
    if known is None:
        return DASH
    if known < 1:
        return f"{known:.2f} ms"
    if known < 10:
        return f"{known:.1f} ms"
    if known < 999.5:
        return f"{known:.0f} ms"
    seconds = known / 1000
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def tps(value: float | None) -> str:
    """A rate in tokens per second, one decimal, unit included.

    >>> tps(61.14), tps(1234.56), tps(None)
    ('61.1 tok/s', '1,234.6 tok/s', '—')
    """
    known = _known(value)
    return DASH if known is None else f"{known:,.1f} tok/s"


def size(value: int | None) -> str:
    """Bytes in decimal units, as ``ollama list`` shows them.

    >>> size(2019393189), size(6_591_830_464), size(274_302_450), size(512), size(None)
    ('2.0 GB', '6.6 GB', '274 MB', '512 B', '—')
    """
    if value is None or isinstance(value, bool) or value <= 0:
        return DASH
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if value >= scale:
            scaled = value / scale
            return f"{scaled:.1f} {unit}" if scaled < 100 else f"{scaled:.0f} {unit}"
    return f"{value} B"


def duration(seconds: float | None) -> str:
    """A long wall time: ``45 s``, ``3 min 12 s``, ``1 h 02 min``.

    >>> duration(45.2), duration(185), duration(3720), duration(None), duration(-1)
    ('45 s', '3 min 05 s', '1 h 02 min', '—', '—')
    """
    known = _known(seconds)
    if known is None or known < 0:
        return DASH
    whole = round(known)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def seconds(value: float | None) -> str:
    """A configured time limit in seconds, as typed (``30``, ``2.5``); ``∞`` for no limit.

    >>> seconds(30.0), seconds(2.5), seconds(None)
    ('30', '2.5', '∞')
    """
    return "∞" if value is None else f"{value:g}"


def percent(share: float | None, *, signed: bool = False) -> str:
    """A share (0.63 → ``63%``) or, ``signed``, a relative change (0.123 → ``+12.3%``).

    >>> percent(0.63), percent(1.0), percent(0.1234, signed=True), percent(-0.04, signed=True)
    ('63%', '100%', '+12.3%', '-4.0%')
    >>> percent(None), percent(float("inf"), signed=True)
    ('—', '—')
    """
    known = _known(share)
    if known is None:
        return DASH
    return f"{known * 100:+.1f}%" if signed else f"{known * 100:.0f}%"


#: GPU share from which a model counts as fully on the GPU (``ollama ps`` rounds to percents).
FULL_GPU_SHARE: Final = 0.995


def gpu(share: float | None) -> str:
    """``ollama ps``'s PROCESSOR column: "100% GPU", "63% GPU", "CPU"; None: "—".

    >>> gpu(1.0), gpu(0.6349), gpu(0.0), gpu(None)
    ('100% GPU', '63% GPU', 'CPU', '—')
    """
    if share is None:
        return DASH
    if share <= 0:
        return "CPU"
    if share >= FULL_GPU_SHARE:
        return "100% GPU"
    return f"{round(share * 100)}% GPU"


__all__ = [
    "DASH",
    "FULL_GPU_SHARE",
    "duration",
    "gpu",
    "ms",
    "number",
    "percent",
    "seconds",
    "size",
    "tps",
]
