"""Settings: one frozen dataclass, read once, in one place.

Precedence (highest first), implemented in :func:`load_settings`:

1. command-line flags (``--base-url``, ``--ca-bundle`` ...)
2. the process environment (``OLLAMA_BASE_URL=... uv run ...``)
3. the ``.env`` file (``./.env`` or ``--env-file PATH``), read without touching ``os.environ``
4. built-in defaults

Every value is validated here; a bad one raises :class:`ConfigError` naming the key, the value
(credentials masked) and a valid example. The server URL keeps its credentials apart from the
address (:class:`ServerURL`), so nothing that prints a URL can print a password by accident.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeVar
from urllib.parse import quote, unquote, urlsplit

from ollamakit import redact
from ollamakit.errors import ConfigError
from ollamakit.i18n import detect_language, t

T = TypeVar("T")

DEFAULT_BASE_URL: Final = "http://localhost:11434"
DEFAULT_PORT: Final = 11434
DEFAULT_GREETING_TIMEOUT_S: Final = 30.0
DEFAULT_BENCHMARK_TIMEOUT_S: Final = 300.0
#: The chat gives up on a reply after this long without a token (loading a model included).
DEFAULT_CHAT_TIMEOUT_S: Final = 120.0
CONNECT_TIMEOUT_S: Final = 5.0
#: The longest timeout accepted: a week. Larger values overflow the platform's clock types.
MAX_TIMEOUT_S: Final = 7 * 86400.0

#: The command-line flag that sets a key, where there is one (named in messages about it).
FLAG_NAMES: Final = {
    "OLLAMA_BASE_URL": "--base-url",
    "BENCHMARK_TIMEOUT_SECONDS": "--timeout",
    "CHAT_TIMEOUT_SECONDS": "--timeout",
    "OLLAMA_CA_BUNDLE": "--ca-bundle",
    "OLLAMA_MODEL": "--model",
    "OLLAMAKIT_LANG": "--lang",
    "OLLAMAKIT_API": "--api",
}

#: Every key the tools read, in the order ``.env.example`` documents them.
KEYS: Final = (
    "OLLAMA_BASE_URL",
    "GREETING_TIMEOUT_SECONDS",
    "BENCHMARK_TIMEOUT_SECONDS",
    "CHAT_TIMEOUT_SECONDS",
    "OLLAMA_API_KEY",
    "OLLAMA_CA_BUNDLE",
    "OLLAMA_MODEL",
    "OLLAMAKIT_HOME",
    "OLLAMAKIT_LANG",
    "OLLAMAKIT_API",
)

#: Which API to speak: Ollama's native ``/api``, an OpenAI-compatible ``/v1`` (llama.cpp's
#: llama-server, vLLM, LM Studio, SGLang, Ollama's own ``/v1``), or ``auto``: detect it from
#: what the server answers (``client.open_backend``; docs/engines.md).
ApiChoice = Literal["auto", "ollama", "openai"]
API_CHOICES: Final[tuple[ApiChoice, ...]] = ("auto", "ollama", "openai")


@dataclass(frozen=True, slots=True)
class ServerURL:
    """A parsed ``OLLAMA_BASE_URL``; the password never appears in ``str()`` or ``repr()``."""

    scheme: str
    host: str  # without brackets, also for IPv6
    port: int
    path: str = ""  # prefix without trailing slash, e.g. "/ollama"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` plus path prefix, with no credentials: what requests go to."""
        return f"{self.scheme}://{self.netloc}{self.path}"

    @property
    def address(self) -> str:
        """``host:port`` for connection messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    @property
    def is_loopback(self) -> bool:
        if self.host.lower() == "localhost" or self.host.lower().endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def redacted(self) -> str:
        """The URL as it may be shown: ``https://user:***@host``.

        >>> parse_base_url("https://ollama-user:s3cret@example.com").redacted()
        'https://ollama-user:***@example.com'
        """
        if self.username is None:
            return self.origin
        user = quote(self.username, safe="")
        return redact.server_url(self.scheme, user, self.password, f"{self.netloc}{self.path}")

    def url(self, api_path: str) -> str:
        """Absolute URL of an API path, without credentials (they travel as a header)."""
        return f"{self.origin}{api_path}"

    def __str__(self) -> str:
        return self.redacted()


def _looks_split(text: str) -> bool:
    """Whether a URL that failed to parse looks like ``user:password`` broken by a character
    that needs percent-encoding (or with no ``@host`` after it).

    >>> _looks_split("https://u:pa/ss@host"), _looks_split("https://u:secret")
    (True, True)
    >>> _looks_split("http://host:99999"), _looks_split("http://[::1")
    (False, False)
    """
    if "@" in text:
        return True
    start = text.index("//") + 2 if "//" in text else 0
    authority = re.split(r"[/?#]", text[start:], maxsplit=1)[0]
    if authority.startswith("["):
        return False
    after = authority.partition(":")[2]
    return bool(after) and not after.isdigit()  # "host:word": a password, or a bad port


def parse_base_url(text: str, key: str = "OLLAMA_BASE_URL") -> ServerURL:
    """Parse a server URL the way Ollama's own clients do, with userinfo and a path prefix.

    A bare host or ``host:port`` means http on port 11434 (like ``OLLAMA_HOST``); an explicit
    scheme without a port means 80/443.

    >>> parse_base_url("192.168.1.100:11434").origin
    'http://192.168.1.100:11434'
    >>> parse_base_url("example.com").origin
    'http://example.com:11434'
    >>> parse_base_url("http://example.com").origin
    'http://example.com'
    >>> u = parse_base_url("https://ollama.example.com")
    >>> (u.port, u.origin)
    (443, 'https://ollama.example.com')
    >>> parse_base_url("https://[::1]:8443/ollama/").origin
    'https://[::1]:8443/ollama'
    >>> u = parse_base_url("https://ollama-user:p%40ss%3Aw%2Fo%23rd@host.example")
    >>> (u.username, u.password)
    ('ollama-user', 'p@ss:w/o#rd')
    >>> parse_base_url("https://user:pa@ss@host.example").password  # a raw '@' is tolerated
    'pa@ss'
    >>> parse_base_url("ftp://host")
    Traceback (most recent call last):
    ...
    ollamakit.errors.ConfigError: Invalid setting OLLAMA_BASE_URL=ftp://host: ...
    """
    raw = text.strip()
    shown = redact.url_password(raw)

    def fail(detail_key: str, **params: object) -> ConfigError:
        return ConfigError(
            t(detail_key, **params),
            key=key,
            value=shown,
            example="https://ollama-user:password@ollama.example.com",
        )

    if not raw:
        raise fail("config.url_empty")
    split = _looks_split(raw)
    has_scheme = "://" in raw
    if not has_scheme and re.match(r"[A-Za-z][A-Za-z0-9+.-]*:/", raw):
        raise fail("config.url_slashes")  # http:/host, https:host/... : a typo, not a host
    try:
        parts = urlsplit(raw if has_scheme else f"http://{raw}")
    except ValueError:  # "Invalid IPv6 URL": an unclosed '[' (or a stray ']')
        raise fail("config.url_split" if split else "config.url_ipv6") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise fail("config.url_scheme", scheme=redact.url_password(scheme))
    if "@" in f"{parts.path}{parts.query}{parts.fragment}":
        # user:pa/ss@host splits at the '/': the "port" would be "pa". Say what is wrong.
        raise fail("config.url_split")
    if parts.query or parts.fragment:
        raise fail("config.url_split" if split else "config.url_query")
    try:
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        raise fail("config.url_split" if split else "config.url_port") from None
    if not host:
        raise fail("config.url_split" if split else "config.url_host")
    if not re.fullmatch(r"[A-Za-z0-9._~%:-]+", host):
        raise fail("config.url_host_chars")
    if port is None:
        port = (443 if scheme == "https" else 80) if has_scheme else DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise fail("config.url_port")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return ServerURL(
        scheme=scheme,
        host=host,
        port=port,
        path=parts.path.rstrip("/"),
        username=username,
        password=password,
    )


def parse_timeout(value: str, key: str) -> float:
    """A positive, finite number of seconds.

    >>> parse_timeout("60", "GREETING_TIMEOUT_SECONDS")
    60.0
    >>> parse_timeout("0", "GREETING_TIMEOUT_SECONDS")
    Traceback (most recent call last):
    ...
    ollamakit.errors.ConfigError: Invalid setting GREETING_TIMEOUT_SECONDS=0: ...
    >>> parse_timeout("9999999999", "BENCHMARK_TIMEOUT_SECONDS")
    Traceback (most recent call last):
    ...
    ollamakit.errors.ConfigError: Invalid setting BENCHMARK_TIMEOUT_SECONDS=9999999999: ...
    """
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(t("config.timeout"), key=key, value=value, example="60")
    if seconds > MAX_TIMEOUT_S:
        raise ConfigError(
            t("config.timeout_max", maximum=f"{MAX_TIMEOUT_S:g}"),
            key=key,
            value=value,
            example="600",
        )
    return seconds


def parse_api(value: str, key: str = "OLLAMAKIT_API") -> ApiChoice:
    """``auto``, ``ollama`` or ``openai`` (case-insensitive).

    >>> parse_api("OpenAI"), parse_api(" auto ")
    ('openai', 'auto')
    >>> parse_api("vllm")
    Traceback (most recent call last):
    ...
    ollamakit.errors.ConfigError: Invalid setting OLLAMAKIT_API=vllm: ...
    """
    choice = value.strip().lower()
    if choice not in API_CHOICES:
        raise ConfigError(t("engine.api_choice"), key=key, value=value, example="openai")
    return choice


def _timeout_of(key: str) -> Callable[[str], float]:
    return lambda value: parse_timeout(value, key)


def resolve_ca_bundle(value: str, sources: Mapping[str, str], env_path: Path) -> Path:
    """The CA bundle's absolute path; it must be a file.

    A relative path from the command line or the environment is relative to the current
    directory; one written in an env file is relative to that file's folder, so an env file
    and the CA next to it keep working from any directory.
    """
    path = Path(value).expanduser()
    from_file = sources.get("OLLAMA_CA_BUNDLE") == ".env" and not path.is_absolute()
    if from_file:
        path = env_path.parent / path
    path = path.absolute()
    if not path.is_file():
        detail = t("config.ca_missing", path=path)
        if from_file:
            detail += t("config.ca_relative_to_file", path=env_file_label(env_path))
        raise ConfigError(detail, key="OLLAMA_CA_BUNDLE", value=value, example="./ca.pem")
    return path


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse ``.env`` text: ``KEY=value`` lines, ``export``, quotes, ``#`` comments.

    >>> parse_dotenv('''
    ... # a comment
    ... export OLLAMA_BASE_URL=http://10.0.0.5:11434   # LAN box
    ... GREETING_TIMEOUT_SECONDS="60"
    ... OLLAMA_API_KEY='k#1 2'
    ... EMPTY=
    ... not a line
    ... ''')
    {'OLLAMA_BASE_URL': 'http://10.0.0.5:11434', 'GREETING_TIMEOUT_SECONDS': '60', \
'OLLAMA_API_KEY': 'k#1 2', 'EMPTY': ''}
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value[:1] in value[1:]:
            quote_char = value[0]
            value = value[1 : value.index(quote_char, 1)]
        else:
            # An unquoted value ends at " #" (an inline comment), as in shells.
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[name] = value
    return values


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the tools need to know, validated."""

    base_url: ServerURL
    greeting_timeout_s: float = DEFAULT_GREETING_TIMEOUT_S
    benchmark_timeout_s: float = DEFAULT_BENCHMARK_TIMEOUT_S
    chat_timeout_s: float = DEFAULT_CHAT_TIMEOUT_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    api_key: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None
    insecure: bool = False
    model: str | None = None
    home: Path = field(default_factory=lambda: default_home({}))
    lang: str = "en"
    debug: bool = False
    api: ApiChoice = "auto"
    env_file: Path | None = None  # the .env that was read, if any
    ollama_host_env: str | None = None  # OLLAMA_HOST in the client's env: a server setting
    sources: Mapping[str, str] = field(default_factory=dict)  # key -> flag/env/.env/default

    @property
    def credentials_in_clear(self) -> bool:
        """Credentials would travel unencrypted over a network (the seed's rule 3)."""
        has_secret = self.base_url.has_credentials or self.api_key is not None
        return has_secret and self.base_url.scheme == "http" and not self.base_url.is_loopback

    @property
    def env_file_label(self) -> str:
        """How to name the env file that was read: ``.env`` for ./.env, else its path."""
        return env_file_label(self.env_file or Path(".env"))

    def setting_name(self, key: str) -> str:
        """How the user set ``key``: its flag (``--ca-bundle``) when it came from one, else the key.

        >>> s = Settings(parse_base_url("h"), sources={"OLLAMA_CA_BUNDLE": "flag"})
        >>> s.setting_name("OLLAMA_CA_BUNDLE"), s.setting_name("OLLAMA_API_KEY")
        ('--ca-bundle', 'OLLAMA_API_KEY')
        """
        if self.sources.get(key) == "flag":
            return FLAG_NAMES.get(key, key)
        return key

    def setting_origin(self, key: str) -> str:
        """Where ``key`` was set, for a message: ``--base-url``, ``OLLAMA_BASE_URL``, or
        ``OLLAMA_BASE_URL in .env`` (the env file's path when it is not ./.env)."""
        if self.sources.get(key) == ".env":
            return t("config.key_in_file", key=key, path=self.env_file_label)
        return self.setting_name(key)


def env_file_label(path: Path) -> str:
    """``.env`` for the default file in the current directory, else the path as given.

    >>> env_file_label(Path(".env")), env_file_label(Path("/srv/ollama/prod.env"))
    ('.env', '/srv/ollama/prod.env')
    """
    try:
        default = path.absolute() == Path(".env").absolute()
    except OSError:  # the working directory is gone
        default = False
    return ".env" if default else str(path)


def default_home(environ: Mapping[str, str]) -> Path:
    if environ.get("OLLAMAKIT_HOME"):
        return Path(environ["OLLAMAKIT_HOME"]).expanduser()
    from platformdirs import user_data_path

    return user_data_path("ollamakit", appauthor=False)


@dataclass(frozen=True, slots=True)
class Flags:
    """The options every command takes (``None`` = not given on the command line)."""

    base_url: str | None = None
    env_file: str | None = None
    ca_bundle: str | None = None
    insecure: bool = False
    lang: str | None = None
    debug: bool = False
    model: str | None = None
    timeout_s: float | None = None  # bench --timeout
    api: str | None = None  # --api auto|ollama|openai
    chat_timeout_s: float | None = None  # chat --timeout


def _api_key(value: str | None) -> str | None:
    """The API key, refused (without showing it) if it holds a line break or control character:
    it could not be sent in a header, and httpx's error would print it."""
    if value is not None and any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ConfigError(
            t("errors.api_key_control"), key="OLLAMA_API_KEY", value="***", example="sk-…"
        )
    return value


def load_settings(flags: Flags | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve flag > environment > .env > default for every key, and validate."""
    flags = flags or Flags()
    process_env = dict(os.environ if environ is None else environ)

    env_path = Path(flags.env_file).expanduser() if flags.env_file else Path(".env")
    dotenv: dict[str, str] = {}
    if env_path.is_file():
        try:
            dotenv = parse_dotenv(env_path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError as exc:
            detail = t("config.env_file_binary", position=exc.start)
            raise ConfigError(
                detail, key="--env-file", value=str(env_path), example=".env"
            ) from None
        except OSError as exc:
            detail = t("config.env_file_unreadable", error=exc.strerror or type(exc).__name__)
            raise ConfigError(
                detail, key="--env-file", value=str(env_path), example=".env"
            ) from None
    elif flags.env_file:
        detail = t("config.env_file_dir" if env_path.is_dir() else "config.env_file_missing")
        raise ConfigError(detail, key="--env-file", value=str(env_path), example=".env")
    sources: dict[str, str] = {}
    in_file = t("config.in_file", path=env_file_label(env_path))

    def checked(key: str, parse: Callable[[str], T], value: str) -> T:
        """``parse(value)``, its ConfigError naming the flag or the env file the value came from."""
        try:
            return parse(value)
        except ConfigError as exc:
            source = sources.get(key)
            if source == "flag":
                exc.params["key"] = FLAG_NAMES.get(key, key)
            elif source == ".env":
                exc.params["where"] = in_file
            raise

    def pick(key: str, flag_value: str | None = None) -> str | None:
        # 1. flag  2. process environment  3. .env  (4. default: the caller's)
        # An empty value counts as unset, as "KEY=" in .env.example means "not configured".
        for source, value in (
            ("flag", flag_value),
            ("env", process_env.get(key)),
            (".env", dotenv.get(key)),
        ):
            if value is not None and value.strip() != "":
                sources[key] = source
                return value.strip()
        sources[key] = "default"
        return None

    base_url = checked(
        "OLLAMA_BASE_URL",
        parse_base_url,
        pick("OLLAMA_BASE_URL", flags.base_url) or DEFAULT_BASE_URL,
    )
    greeting = pick("GREETING_TIMEOUT_SECONDS")
    bench_timeout = pick(
        "BENCHMARK_TIMEOUT_SECONDS", None if flags.timeout_s is None else str(flags.timeout_s)
    )
    chat_timeout = pick(
        "CHAT_TIMEOUT_SECONDS", None if flags.chat_timeout_s is None else str(flags.chat_timeout_s)
    )
    ca = pick("OLLAMA_CA_BUNDLE", flags.ca_bundle)
    ca_path = (
        checked("OLLAMA_CA_BUNDLE", lambda v: resolve_ca_bundle(v, sources, env_path), ca)
        if ca
        else None
    )
    home = pick("OLLAMAKIT_HOME")
    lang_value = pick("OLLAMAKIT_LANG", flags.lang)
    api_value = pick("OLLAMAKIT_API", flags.api)
    return Settings(
        base_url=base_url,
        greeting_timeout_s=(
            checked("GREETING_TIMEOUT_SECONDS", _timeout_of("GREETING_TIMEOUT_SECONDS"), greeting)
            if greeting
            else DEFAULT_GREETING_TIMEOUT_S
        ),
        benchmark_timeout_s=(
            checked(
                "BENCHMARK_TIMEOUT_SECONDS", _timeout_of("BENCHMARK_TIMEOUT_SECONDS"), bench_timeout
            )
            if bench_timeout
            else DEFAULT_BENCHMARK_TIMEOUT_S
        ),
        chat_timeout_s=(
            checked("CHAT_TIMEOUT_SECONDS", _timeout_of("CHAT_TIMEOUT_SECONDS"), chat_timeout)
            if chat_timeout
            else DEFAULT_CHAT_TIMEOUT_S
        ),
        api_key=_api_key(pick("OLLAMA_API_KEY")),
        ca_bundle=ca_path,
        insecure=flags.insecure,
        model=pick("OLLAMA_MODEL", flags.model),
        home=Path(home).expanduser() if home else default_home({}),
        lang=detect_language(lang_value, process_env),
        debug=flags.debug,
        api=checked("OLLAMAKIT_API", parse_api, api_value) if api_value else "auto",
        env_file=env_path if dotenv or env_path.is_file() else None,
        ollama_host_env=process_env.get("OLLAMA_HOST") or None,
        sources=sources,
    )
