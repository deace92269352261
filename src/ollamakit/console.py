"""Deprecated: a thin shim over :mod:`ollamakit.ui` for code not yet given a ``Terminal``.

Commands receive a :class:`ollamakit.ui.Terminal` from ``cli.main``; use its ``stdout`` /
``stderr`` / ``warn`` / ``info`` / ``print_error``. The helpers here build a fresh
``Terminal`` on the current ``sys`` streams for each call: there is no module-global console
any more. Text wrapping lives in :mod:`ollamakit.ui.wrap`.
"""

from __future__ import annotations

from ollamakit.errors import OllamakitError
from ollamakit.ui.terminal import Terminal
from ollamakit.ui.wrap import hanging, wrap

__all__ = ["hanging", "info", "print_error", "print_unexpected", "reset_consoles", "warn", "wrap"]


def reset_consoles() -> None:
    """Nothing to reset: kept for callers (the test fixture) written before ``Terminal``."""


def warn(message: str) -> None:
    Terminal.from_env().warn(message)


def info(message: str) -> None:
    Terminal.from_env().info(message)


def print_error(error: OllamakitError) -> None:
    Terminal.from_env().print_error(error)


def print_unexpected(exc: BaseException) -> None:
    Terminal.from_env().print_unexpected(exc)
