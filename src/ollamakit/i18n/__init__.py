"""Message catalogues: every user-facing sentence lives here, in English and Traditional Chinese.

Design
------
Catalogues are TOML files in ``i18n/messages/``, one per concern (``errors.toml``,
``bench.toml``, ``chat.toml`` ...), so each part of the program owns its own file. A key is
``<file>.<name>``; each entry holds both languages side by side so a missing translation is
visible in review and caught by a test::

    [refused]
    en = "Connection refused by {address}."
    zh-TW = "{address} 拒絕連線。"

``t("errors.refused", address="1.2.3.4:11434")`` formats the entry in the current language.
The language is chosen once at start-up (``--lang`` > ``OLLAMAKIT_LANG`` > locale) and stored
module-wide: a CLI process speaks one language. Files are parsed lazily on first use.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Final

LANGUAGES: Final = ("en", "zh-TW")
DEFAULT_LANGUAGE: Final = "en"

_current = DEFAULT_LANGUAGE


def normalize_language(value: str) -> str | None:
    """Map a language tag or POSIX locale to a supported language, or None.

    >>> normalize_language("zh_TW.UTF-8")
    'zh-TW'
    >>> normalize_language("zh-Hant")
    'zh-TW'
    >>> normalize_language("zh_HK")
    'zh-TW'
    >>> normalize_language("en_US.UTF-8")
    'en'
    >>> normalize_language("C") is None
    True
    """
    tag = value.strip().split(".")[0].split("@")[0].replace("_", "-").lower()
    if not tag or tag in ("c", "posix"):
        return None
    if tag.startswith("zh"):
        # Traditional script regions and explicit Hant; Simplified falls back to English
        # rather than guessing a script the user did not ask for.
        if any(part in tag for part in ("tw", "hant", "hk", "mo")):
            return "zh-TW"
        return None
    if tag.startswith("en"):
        return "en"
    return None


def detect_language(flag: str | None, environ: Mapping[str, str]) -> str:
    """Pick the language: ``--lang`` > ``OLLAMAKIT_LANG`` > locale variables > English.

    >>> detect_language(None, {"LANG": "zh_TW.UTF-8"})
    'zh-TW'
    >>> detect_language("en", {"LANG": "zh_TW.UTF-8"})
    'en'
    >>> detect_language(None, {"OLLAMAKIT_LANG": "zh-TW", "LANG": "en_US.UTF-8"})
    'zh-TW'
    >>> detect_language(None, {})
    'en'
    """
    # 1. explicit flag  2. our own variable  3. POSIX locale, in libc's order
    for candidate in (flag, environ.get("OLLAMAKIT_LANG")):
        if candidate:
            lang = normalize_language(candidate)
            if lang:
                return lang
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return normalize_language(value) or DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def set_language(lang: str) -> None:
    global _current
    if lang not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}")
    _current = lang


def get_language() -> str:
    return _current


@cache
def catalogue(domain: str) -> dict[str, dict[str, str]]:
    """The parsed entries of one catalogue file."""
    text = resources.files(__package__).joinpath("messages", f"{domain}.toml").read_text("utf-8")
    return tomllib.loads(text)


def domains() -> list[str]:
    folder = resources.files(__package__).joinpath("messages")
    names = (p.name for p in folder.iterdir())
    return sorted(n.removesuffix(".toml") for n in names if n.endswith(".toml"))


def t(key: str, /, **params: object) -> str:
    """The message ``key`` in the current language, formatted with ``params``."""
    domain, _, name = key.partition(".")
    entry = catalogue(domain)[name]
    template = entry.get(_current) or entry[DEFAULT_LANGUAGE]
    return template.format(**params) if params else template
