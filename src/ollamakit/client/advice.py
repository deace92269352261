"""What to tell a user a 401 means, and the curl command that repeats a request.

Both are derived from what was *sent* (a login in the URL, an API key, nothing), never from
the secret itself: the curl command names ``-u USER`` (curl then asks for the password) or
``$OLLAMA_API_KEY``.
"""

from __future__ import annotations

import shlex

from ollamakit.config import ServerURL, Settings
from ollamakit.i18n import t


def auth_advice(settings: Settings) -> str:
    """What a 401 means given what was sent: no login, a rejected password, a rejected key."""
    server = settings.base_url
    if server.has_credentials:
        return t(
            "errors.auth_wrong_password",
            user=server.username,
            source=settings.setting_origin("OLLAMA_BASE_URL"),
        )
    if settings.api_key:
        return t("errors.auth_wrong_key", source=settings.setting_origin("OLLAMA_API_KEY"))
    return t("errors.auth_no_credentials")


def curl_command(settings: Settings, path: str = "/api/tags") -> str:
    """A curl command line that makes the same request with the same trust and login.

    Never the password: ``-u USER`` makes curl ask for it (which keeps it out of the shell
    history), and an API key is referred to as ``$OLLAMA_API_KEY``.

    >>> from pathlib import Path
    >>> from ollamakit.config import parse_base_url
    >>> curl_command(Settings(parse_base_url("https://ollama-user:pw@h.example")))
    'curl -u ollama-user https://h.example/api/tags'
    >>> curl_command(Settings(parse_base_url("https://h.example"), ca_bundle=Path("/etc/ca.pem"),
    ...                       api_key="k"))
    'curl --cacert /etc/ca.pem -H "Authorization: Bearer $OLLAMA_API_KEY" https://h.example/api/tags'
    """
    server = settings.base_url
    words = ["curl"]
    if server.scheme == "https":
        if settings.ca_bundle is not None:
            words += ["--cacert", shlex.quote(str(settings.ca_bundle))]
        if settings.insecure:
            words.append("-k")
    if server.username is not None:
        words += ["-u", shlex.quote(server.username)]
    elif settings.api_key:
        words += ["-H", '"Authorization: Bearer $OLLAMA_API_KEY"']
    else:
        words += ["-u", t("errors.curl_user")]
    words.append(shlex.quote(server.url(path)))
    return " ".join(words)


def suggest_base(location: str, path: str, server: ServerURL) -> str:
    """The base URL a redirect points to, with the user's credentials redacted.

    >>> from ollamakit.config import parse_base_url
    >>> suggest_base("https://h.example/api/tags", "/api/tags", parse_base_url("http://u:p@h.example"))
    'https://u:***@h.example'
    """
    target = location
    if target.endswith(path):
        target = target[: -len(path)]
    if "://" not in target:  # relative redirect
        target = server.origin + target
    target = target.rstrip("/")
    if server.username is not None and "@" not in target:
        scheme, _, rest = target.partition("://")
        user = server.redacted().split("://", 1)[1].split("@", 1)[0]
        target = f"{scheme}://{user}@{rest}"
    return target
