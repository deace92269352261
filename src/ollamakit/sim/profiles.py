"""Behaviour profiles: what the Ollama version the simulator reports would do differently.

``--ollama-version`` is not only the string ``/api/version`` returns: :func:`profile_for`
turns it into a :class:`Profile`, and the handlers ask the profile instead of hard-coding one
release. Facts and their sources are in ``shared/ollama-api.md`` (its Corrections section)::

    behaviour (version from)                      profile
    unset think on a thinking model               off, <think> tags in content; on from 0.12.5
    string think level on a non-gpt-oss model     400 until 0.17.x; accepted from 0.18.0
    think "max"                                   400 (invalid think value); accepted from 0.22.0
    malformed model name                          chat 400 "model is required", generate 404;
                                                  400 "invalid model name" from 0.18.0
    default num_ctx                               4096 through 0.15.4; VRAM-tiered from 0.15.5
    capabilities, context_length in /api/tags     from 0.30.0
    prompt_eval_count with a cached prefix        all prompt tokens; uncached only in 0.30.0

Versions before 0.12 behave as 0.12.0 except for the chat not-found text (``model "x" not
found, try pulling it first``, up to 0.11.x).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

DEFAULT_VERSION: Final = "0.33.0"
GIB: Final = 1 << 30


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.12.6"`` -> (0, 12, 6); a suffix (``-rc2``) and a leading ``v`` are ignored.

    >>> parse_version("v0.33.0-rc2"), parse_version("0.12")
    ((0, 33, 0), (0, 12, 0))
    >>> parse_version("banana")
    (0, 0, 0)
    """
    match = re.match(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", text.strip())
    if not match:
        return (0, 0, 0)
    return (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))


@dataclass(frozen=True)
class Profile:
    """The version-dependent behaviour of one Ollama release."""

    version: tuple[int, int, int]

    @property
    def think_default_on(self) -> bool:
        """Unset ``think`` on a thinking model means true (0.12.5+); before, the reasoning
        came inside the content, wrapped in ``<think>`` tags."""
        return self.version >= (0, 12, 5)

    @property
    def think_levels_on_any_model(self) -> bool:
        """Until 0.17.x a string level on a non-gpt-oss model is a 400."""
        return self.version >= (0, 18, 0)

    @property
    def think_max(self) -> bool:
        return self.version >= (0, 22, 0)

    @property
    def think_levels(self) -> tuple[str, ...]:
        return ("high", "medium", "low", "max") if self.think_max else ("high", "medium", "low")

    def _levels_text(self) -> str:
        return ", ".join(f'"{level}"' for level in self.think_levels)

    def think_invalid(self, quoted: str) -> str:
        return f"invalid think value: {quoted} (must be {self._levels_text()}, true, or false)"

    @property
    def think_wrong_type(self) -> str:
        return f"think must be a boolean or string ({self._levels_text()}, true, or false)"

    @property
    def invalid_name_error(self) -> bool:
        """0.18.0+: a malformed name is 400 ``invalid model name`` on generate and chat."""
        return self.version >= (0, 18, 0)

    @property
    def chat_not_found_legacy(self) -> bool:
        return self.version < (0, 12, 0)

    @property
    def tags_capabilities(self) -> bool:
        """``capabilities`` and ``details.context_length`` in ``/api/tags`` (0.30.0+)."""
        return self.version >= (0, 30, 0)

    @property
    def prompt_count_uncached_only(self) -> bool:
        """Only 0.30.0 counted just the uncached prompt tokens."""
        return self.version == (0, 30, 0)

    def default_num_ctx(self, vram_bytes: int) -> int:
        """4096 through 0.15.4; then tiered by VRAM: <23 GiB 4k, ≤47 GiB 32k, above 256k.

        >>> old, new = Profile((0, 15, 4)), Profile((0, 33, 0))
        >>> old.default_num_ctx(80 * GIB), new.default_num_ctx(80 * GIB)
        (4096, 262144)
        """
        if self.version <= (0, 15, 4) or vram_bytes < 23 * GIB:
            return 4096
        if vram_bytes <= 47 * GIB:
            return 32768
        return 262144


def profile_for(version: str) -> Profile:
    """
    >>> profile_for("0.12.4").think_default_on, profile_for("0.12.5").think_default_on
    (False, True)
    """
    return Profile(parse_version(version))
