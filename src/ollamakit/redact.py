"""The one place credentials are masked: URLs, headers and free text.

Everything that may hold a password or token and is shown, logged or saved passes through
here: the server URL in messages and documents (``https://user:***@host``), a URL that failed
to parse, the proxy the environment names, request headers, and any free text (error details,
a saved run document: :func:`scrub`). Masking errs on the side of over-masking: a password
may hold a raw ``@``, ``/`` or ``#``, so a match runs to the *last* ``@``. Every function is
idempotent (masking a masked text changes nothing), which the tests check.

This module imports nothing from the project, so every layer may use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, TypeVar, cast

#: What a secret is replaced with.
MASK: Final = "***"

#: Request headers whose values are credentials.
SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})

# scheme://user:password@host -- the password may hold a raw "@" (parse_base_url tolerates
# it), so it runs to the *last* "@" before whitespace: over-masking beats leaking.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/?#@:]*):(\S*)@")
# user:password@host without a scheme (OLLAMA_BASE_URL accepts a bare host).
_BARE_USERINFO = re.compile(r"(?<![\w/:@.%~\-])([\w.%~\-]+):([^\s/]\S*)@(?=[\w\[])")
# Authorization header values: after "Authorization:", or token-shaped (long, with a digit) so
# that prose such as "basic authentication" is left alone.
_AUTH_HEADER = re.compile(r"(?i)(authorization\s*[:=]\s*(?:bearer|basic)\s+)[^\s\"',;]+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)(?=[\w.~+/=\-]*\d)[\w.~+/=\-]{16,}")
_BASIC = re.compile(
    r"(?i)\b(basic\s+)(?=[A-Za-z0-9+/=]*[0-9+/=])[A-Za-z0-9+/]{8,}={0,2}(?![\w+/=])"
)


def redact(text: str) -> str:
    """Mask passwords in URL userinfo and ``Bearer``/``Basic`` tokens, anywhere in ``text``.

    >>> redact("https://ollama-user:s3cret@gpu.example.com:8443/ollama")
    'https://ollama-user:***@gpu.example.com:8443/ollama'
    >>> redact("GET http://u:pa@ss@10.0.0.5:11434/api/tags failed")
    'GET http://u:***@10.0.0.5:11434/api/tags failed'
    >>> redact("ollama-user:hunter2@gpu.lan:11434")
    'ollama-user:***@gpu.lan:11434'
    >>> redact("Authorization: Bearer sk-abc")
    'Authorization: Bearer ***'
    >>> redact("token: Bearer sk-proj-4f9a2c7e41d84b0c, Basic b2xsYW1hOnB3")
    'token: Bearer ***, Basic ***'
    >>> redact("basic authentication with a bearer token")
    'basic authentication with a bearer token'
    >>> redact("https://user:***@host")  # idempotent
    'https://user:***@host'
    >>> redact("http://localhost:11434 and llama3.2:3b, 12:30 ok")
    'http://localhost:11434 and llama3.2:3b, 12:30 ok'
    """
    lowered = text.lower()
    if "@" in text:
        text = _URL_USERINFO.sub(rf"\1:{MASK}@", text)
        text = _BARE_USERINFO.sub(rf"\1:{MASK}@", text)
    if "bearer" in lowered or "basic" in lowered:
        text = _AUTH_HEADER.sub(rf"\1{MASK}", text)
        text = _BEARER.sub(rf"\1{MASK}", text)
        text = _BASIC.sub(rf"\1{MASK}", text)
    return text


def url_password(text: str) -> str:
    """Mask whatever may be a password in a URL-ish string that failed to parse.

    A value that does not parse is often a password that broke the URL: a raw ``/``, ``?``,
    ``#`` or ``@`` in it, or a ``.env`` line cut short at a quote or at `` #``, so that no
    ``@host`` follows. Everything after the first ``:`` of the authority is hidden then,
    unless it is plainly a port number.

    >>> url_password("ftp://u:pw@h")
    'ftp://u:***@h'
    >>> url_password("no credentials here")
    'no credentials here'
    >>> url_password("https://u:pa/ss@host")  # a raw '/' in the password is masked too
    'https://u:***@host'
    >>> url_password("u:pw@10.0.0.5:99999")  # no scheme
    'u:***@10.0.0.5:99999'
    >>> url_password("https://ollama-user:SecretCanary")  # cut before '@host'
    'https://ollama-user:***'
    >>> url_password("https://u:Sec/ret#x")  # no '@' at all: hide the rest
    'https://u:***'
    >>> url_password("http://10.0.0.5:99999/api"), url_password("http://[::1")
    ('http://10.0.0.5:99999/api', 'http://[::1')
    >>> url_password("'https://u:pw")  # a stray quote before the scheme
    "'https://u:***"
    """
    if "@" in text:
        # Up to the *last* '@': a password that breaks parsing often holds '/', '?' or '#'.
        pattern = r"(//[^/@:]*):.*@" if "//" in text else r"^([^/@:]*):.*@"
        return re.sub(pattern, rf"\1:{MASK}@", text, flags=re.DOTALL)
    start = text.index("//") + 2 if "//" in text else 0
    authority = re.split(r"[/?#]", text[start:], maxsplit=1)[0]
    if authority.startswith("["):  # an IPv6 literal: its colons are not a password
        return text
    name, colon, after = authority.partition(":")
    if not colon or not after or after.isdigit():
        return text
    return f"{text[:start]}{name}:{MASK}"


def url_userinfo(url: str) -> str:
    """Mask the whole userinfo of a URL, user name included (a proxy URL from the environment).

    >>> url_userinfo("http://alice:pw@proxy.lan:3128"), url_userinfo("http://proxy.lan:3128")
    ('http://***@proxy.lan:3128', 'http://proxy.lan:3128')
    """
    return re.sub(r"//[^/@]*@", f"//{MASK}@", url)


def server_url(scheme: str, user: str | None, password: str | None, rest: str) -> str:
    """A server URL as it may be shown: the user kept, the password masked.

    >>> server_url("https", "ollama-user", "s3cret", "example.com/ollama")
    'https://ollama-user:***@example.com/ollama'
    >>> server_url("https", "token-only", None, "h"), server_url("http", None, None, "h:1")
    ('https://token-only@h', 'http://h:1')
    """
    if user is None:
        return f"{scheme}://{rest}"
    secret = f":{MASK}" if password is not None else ""
    return f"{scheme}://{user}{secret}@{rest}"


def headers(values: Mapping[str, str]) -> dict[str, str]:
    """A copy of request headers with credential values masked (for a log or an error).

    >>> headers({"Authorization": "Basic dTpw", "Accept": "application/json"})
    {'Authorization': '***', 'Accept': 'application/json'}
    """
    return {k: MASK if k.lower() in SECRET_HEADERS else v for k, v in values.items()}


_J = TypeVar("_J")


def scrub(value: _J) -> _J:
    """A copy of a JSON-like value with :func:`redact` applied to every string.

    >>> scrub({"server": {"base_url": "http://a:b@h"}, "n": [1, None, "x"]})
    {'server': {'base_url': 'http://a:***@h'}, 'n': [1, None, 'x']}
    """
    if isinstance(value, str):
        return cast(_J, redact(value))
    if isinstance(value, dict):
        return cast(_J, {scrub(k): scrub(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return cast(_J, [scrub(v) for v in value])
    return value


__all__ = [
    "MASK",
    "SECRET_HEADERS",
    "headers",
    "redact",
    "scrub",
    "server_url",
    "url_password",
    "url_userinfo",
]
