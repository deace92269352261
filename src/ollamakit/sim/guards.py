"""Ollama's two global middlewares: CORS (``OLLAMA_ORIGINS``) and the Host-header check.

Both run before routing, so they also answer unknown paths, in this order (routes.go):

CORS (gin-contrib/cors v1.7.2), only for requests with a non-empty ``Origin``:
    same origin (``Origin`` is ``http(s)://`` + ``Host``) → pass; origin not allowed → 403 with an
    empty body; allowed ``OPTIONS`` → 204 preflight; otherwise add ``Access-Control-Allow-Origin``
    and ``Vary: Origin`` and pass.

Host check (``allowedHostsMiddleware``), only when the listener is a loopback address:
    Host (port stripped) that is a loopback, private, unspecified or local-interface IP → pass;
    ``""``, ``localhost``, the machine's hostname, ``*.localhost``, ``*.local``, ``*.internal`` →
    pass (and ``OPTIONS`` → 204); anything else → 403 with an empty body. This is the check that
    turns nginx's ``proxy_set_header Host $host`` into a 403 on every endpoint.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Iterable
from enum import Enum
from functools import cache
from typing import Final

_PRIVATE: Final = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)

DEFAULT_ORIGINS: Final = (
    *(
        f"{scheme}://{host}{port}"
        for host in ("localhost", "127.0.0.1", "0.0.0.0")
        for scheme in ("http", "https")
        for port in ("", ":*")
    ),
    "app://*",
    "file://*",
    "tauri://*",
    "vscode-webview://*",
    "vscode-file://*",
)

PREFLIGHT_HEADERS: Final = (
    ("Access-Control-Allow-Methods", "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS"),
    (
        "Access-Control-Allow-Headers",
        ",".join(
            (
                "Authorization",
                "Content-Type",
                "User-Agent",
                "Accept",
                "X-Requested-With",
                "Openai-Beta",
                "X-Stainless-Arch",
                "X-Stainless-Async",
                "X-Stainless-Custom-Poll-Interval",
                "X-Stainless-Helper-Method",
                "X-Stainless-Lang",
                "X-Stainless-Os",
                "X-Stainless-Package-Version",
                "X-Stainless-Poll-Helper",
                "X-Stainless-Retry-Count",
                "X-Stainless-Runtime",
                "X-Stainless-Runtime-Version",
                "X-Stainless-Timeout",
            )
        ),
    ),
    ("Access-Control-Max-Age", "43200"),
    ("Vary", "Origin"),
    ("Vary", "Access-Control-Request-Method"),
    ("Vary", "Access-Control-Request-Headers"),
)


class OriginPolicy:
    """Which ``Origin`` values are allowed: the defaults plus ``--origins`` (wildcards allowed)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.exact: set[str] = set()
        self.wildcards: list[tuple[str, str]] = []
        for origin in (*extra, *DEFAULT_ORIGINS):
            if "*" in origin:
                prefix, _, suffix = origin.partition("*")
                self.wildcards.append((prefix, suffix))
            else:
                self.exact.add(origin)

    def allows(self, origin: str) -> bool:
        """
        >>> p = OriginPolicy(["https://ui.example.com"])
        >>> p.allows("http://localhost:3000"), p.allows("https://ui.example.com")
        (True, True)
        >>> p.allows("https://evil.example.com"), OriginPolicy(["*"]).allows("https://x")
        (False, True)
        """
        if origin in self.exact:
            return True
        return any(
            origin.startswith(pre) and origin.endswith(suf) and len(origin) >= len(pre) + len(suf)
            for pre, suf in self.wildcards
        )


def split_host(host: str) -> str:
    """Go ``net.SplitHostPort``'s host, or the whole value when that fails (as Ollama does).

    >>> split_host("localhost:11434"), split_host("[::1]:11434"), split_host("[::1]")
    ('localhost', '::1', '[::1]')
    """
    if host.startswith("["):
        end = host.find("]")
        if end > 0 and host[end + 1 : end + 2] == ":" and "]" not in host[end + 1 :]:
            return host[1:end]
        return host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


@cache
def _is_local_ip(ip: str) -> bool:
    """Whether the address belongs to an interface of this machine (it can be bound)."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((ip, 0))
        return True
    return False


class HostVerdict(Enum):
    ALLOWED_IP = "ip"  # continue to routing
    ALLOWED_NAME = "name"  # continue, but OPTIONS is answered 204 right here
    FORBIDDEN = "forbidden"


def check_host(host_header: str, hostname: str) -> HostVerdict:
    """Ollama's ``allowedHostsMiddleware`` for a loopback listener.

    >>> check_host("localhost:11434", "box").value, check_host("ollama.example.com", "box").value
    ('name', 'forbidden')
    >>> check_host("192.168.1.10:11434", "box").value, check_host("gpu.internal", "box").value
    ('ip', 'name')
    """
    host = split_host(host_header)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        addr = None
    if addr is not None:
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if (
            addr.is_loopback
            or addr.is_unspecified
            or any(addr in net for net in _PRIVATE)
            or _is_local_ip(str(addr))
        ):
            return HostVerdict.ALLOWED_IP
    name = host.lower()
    if name in ("", "localhost", hostname.lower()) or name.endswith(
        (".localhost", ".local", ".internal")
    ):
        return HostVerdict.ALLOWED_NAME
    return HostVerdict.FORBIDDEN
