"""Configuration: precedence flag > environment > .env > default, and validation messages.

Every invalid value must produce a :class:`ConfigError` whose text names the key, shows the
value with any password masked, and whose hint gives a valid example.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ollamakit.config import (
    DEFAULT_BASE_URL,
    DEFAULT_BENCHMARK_TIMEOUT_S,
    Flags,
    load_settings,
    parse_base_url,
)
from ollamakit.errors import ConfigError

# --------------------------------------------------------------------------- precedence

FLAG_URL = "http://flag.example:1"
ENV_URL = "http://env.example:2"
DOTENV_URL = "http://dotenv.example:3"


def _write_dotenv(text: str, path: Path | None = None) -> Path:
    target = path or Path(".env")  # the test's own empty working directory (conftest)
    target.write_text(text, encoding="utf-8")
    return target


@pytest.mark.parametrize(
    ("flag", "env", "dotenv", "expected", "source"),
    [
        (FLAG_URL, ENV_URL, DOTENV_URL, FLAG_URL, "flag"),  # flag > env (and > .env)
        (FLAG_URL, None, DOTENV_URL, FLAG_URL, "flag"),  # flag > .env
        (FLAG_URL, None, None, FLAG_URL, "flag"),  # flag > default
        (None, ENV_URL, DOTENV_URL, ENV_URL, "env"),  # env > .env
        (None, ENV_URL, None, ENV_URL, "env"),  # env > default
        (None, None, DOTENV_URL, DOTENV_URL, ".env"),  # .env > default
        (None, None, None, DEFAULT_BASE_URL, "default"),
    ],
)
def test_precedence_of_base_url(
    flag: str | None, env: str | None, dotenv: str | None, expected: str, source: str
) -> None:
    if dotenv:
        _write_dotenv(f"OLLAMA_BASE_URL={dotenv}\n")
    environ = {"OLLAMA_BASE_URL": env} if env else {}
    settings = load_settings(Flags(base_url=flag), environ=environ)
    assert settings.base_url.origin == expected
    assert settings.sources["OLLAMA_BASE_URL"] == source


def test_precedence_applies_to_every_key() -> None:
    _write_dotenv(
        "BENCHMARK_TIMEOUT_SECONDS=11\nGREETING_TIMEOUT_SECONDS=12\nOLLAMA_MODEL=dotenv-model\n"
    )
    settings = load_settings(
        Flags(timeout_s=7.0),
        environ={"GREETING_TIMEOUT_SECONDS": "22"},
    )
    assert settings.benchmark_timeout_s == 7.0  # flag beats .env
    assert settings.greeting_timeout_s == 22.0  # env beats .env
    assert settings.model == "dotenv-model"  # .env beats default
    assert settings.sources["BENCHMARK_TIMEOUT_SECONDS"] == "flag"
    assert settings.sources["GREETING_TIMEOUT_SECONDS"] == "env"
    assert settings.sources["OLLAMA_MODEL"] == ".env"
    Path(".env").unlink()
    defaults = load_settings(environ={})
    assert defaults.benchmark_timeout_s == DEFAULT_BENCHMARK_TIMEOUT_S


def test_empty_value_counts_as_unset() -> None:
    # .env.example ships "KEY=" lines: they must not override a lower layer with "".
    _write_dotenv("OLLAMA_BASE_URL=http://dotenv.example:3\n")
    settings = load_settings(environ={"OLLAMA_BASE_URL": "  "})
    assert settings.base_url.host == "dotenv.example"


def test_env_file_flag_picks_another_file(tmp_path: Path) -> None:
    _write_dotenv("OLLAMA_BASE_URL=http://default-dotenv:1\n")
    other = _write_dotenv("OLLAMA_BASE_URL=http://other-file:2\n", tmp_path / "prod.env")
    settings = load_settings(Flags(env_file=str(other)), environ={})
    assert settings.base_url.host == "other-file"
    assert settings.env_file == other


def test_missing_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(env_file=str(tmp_path / "nope.env")), environ={})
    assert "--env-file" in info.value.message
    assert "nope.env" in info.value.message


def test_dotenv_does_not_touch_os_environ() -> None:
    _write_dotenv("OLLAMA_MODEL=from-dotenv\nOLLAMA_API_KEY=k-123\n")
    before = dict(os.environ)
    settings = load_settings()
    assert settings.model == "from-dotenv"
    assert "OLLAMA_MODEL" not in os.environ
    assert "OLLAMA_API_KEY" not in os.environ
    assert dict(os.environ) == before


def test_ollama_host_in_client_env_is_recorded_not_used() -> None:
    settings = load_settings(environ={"OLLAMA_HOST": "0.0.0.0:11434"})
    assert settings.ollama_host_env == "0.0.0.0:11434"
    assert settings.base_url.origin == DEFAULT_BASE_URL


def test_credentials_in_clear() -> None:
    remote = load_settings(Flags(base_url="http://u:p@192.168.1.5:11434"), environ={})
    assert remote.credentials_in_clear
    local = load_settings(Flags(base_url="http://u:p@127.0.0.1:11434"), environ={})
    assert not local.credentials_in_clear
    tls = load_settings(Flags(base_url="https://u:p@ollama.example.com"), environ={})
    assert not tls.credentials_in_clear
    key = load_settings(Flags(base_url="http://10.0.0.5:11434"), environ={"OLLAMA_API_KEY": "sk-1"})
    assert key.credentials_in_clear


# --------------------------------------------------------------------------- validation


def _config_error(url: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(base_url=url), environ={})
    return info.value


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://ollama.example.com", ["scheme", "ftp"]),
        ("http://", ["host"]),
        ("http://host.example:0", ["port", "65535"]),
        ("http://host.example:70000", ["port", "65535"]),
        ("http://host.example/?x=1", ["query"]),
        ("http:/host.example", ["://"]),
        ("http://[::1", ["IPv6", "brackets"]),
        ("http://exa mple.com", ["host name"]),
    ],
)
def test_bad_url_names_key_value_and_example(url: str, words: list[str]) -> None:
    error = _config_error(url)  # given as --base-url: the message names the flag
    assert f"Invalid setting --base-url={url}:" in error.message
    for word in words:
        assert word in error.message
    assert error.hint is not None
    assert "--base-url=https://" in error.hint  # a valid example
    assert error.exit_status == 2
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"OLLAMA_BASE_URL": url})
    assert f"Invalid setting OLLAMA_BASE_URL={url}:" in info.value.message
    assert "OLLAMA_BASE_URL=https://" in (info.value.hint or "")


def test_a_word_after_the_colon_may_be_a_password_and_is_masked() -> None:
    # "host:port" with a word is either a typo or user:password with no "@host" after it
    # (a .env line cut short at a quote or at " #"): hide it, explain percent-encoding.
    error = _config_error("http://host.example:port")
    assert "--base-url=http://host.example:***:" in error.message
    assert "port" in error.message
    assert "%2F" in error.message


def test_bad_value_in_an_env_file_names_the_file(tmp_path: Path) -> None:
    _write_dotenv("OLLAMA_BASE_URL=http://host.example:0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    assert "OLLAMA_BASE_URL=http://host.example:0 (in .env): the port" in info.value.message
    other = _write_dotenv("GREETING_TIMEOUT_SECONDS=abc\n", tmp_path / "prod.env")
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(env_file=str(other)), environ={})
    assert f"GREETING_TIMEOUT_SECONDS=abc (in {other}): " in info.value.message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://admin:s3cr3t-canary@host.example",
        "https://admin:s3cr3t-canary@host.example:99999",
        "https://admin:s3cr3t/canary@host.example",  # raw '/' in the password
        "https://admin:s3cr3t#canary@host.example",  # raw '#'
        "admin:s3cr3t-canary@host.example:99999",  # no scheme
    ],
)
def test_bad_url_masks_the_password(url: str) -> None:
    error = _config_error(url)
    assert "s3cr3t" not in error.message
    assert "canary" not in error.message
    assert "admin:***@" in error.message


def test_raw_slash_or_hash_in_password_says_percent_encode() -> None:
    for url in ("https://u:pa/ss@host.example", "https://u:pa#ss@host.example"):
        assert "%2F" in _config_error(url).message


@pytest.mark.parametrize("value", ["-1", "0", "nan", "NaN", "inf", "abc", ""])
def test_bad_timeouts(value: str) -> None:
    if value == "":
        # empty = unset: the default applies
        assert load_settings(environ={"GREETING_TIMEOUT_SECONDS": value}).greeting_timeout_s
        return
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"GREETING_TIMEOUT_SECONDS": value})
    assert f"GREETING_TIMEOUT_SECONDS={value}" in info.value.message
    assert "positive" in info.value.message
    assert info.value.hint == "Example: GREETING_TIMEOUT_SECONDS=60"


def test_bad_benchmark_timeout_from_dotenv() -> None:
    _write_dotenv("BENCHMARK_TIMEOUT_SECONDS=-5\n")
    with pytest.raises(ConfigError, match="BENCHMARK_TIMEOUT_SECONDS=-5"):
        load_settings(environ={})


def test_missing_ca_bundle_names_its_source_and_the_absolute_path() -> None:
    looked_at = Path.cwd() / "nothere.pem"
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(ca_bundle="nothere.pem"), environ={})
    assert info.value.message == (
        f"Invalid setting --ca-bundle=nothere.pem: the CA bundle file does not exist "
        f"(looked for {looked_at})"
    )
    assert info.value.hint == "Example: --ca-bundle=./ca.pem"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"OLLAMA_CA_BUNDLE": "nothere.pem"})
    assert (
        f"OLLAMA_CA_BUNDLE=nothere.pem: the CA bundle file does not exist (looked for {looked_at})"
        in info.value.message
    )


def test_relative_ca_bundle_in_an_env_file_is_relative_to_that_file(tmp_path: Path) -> None:
    folder = tmp_path / "server-a"
    folder.mkdir()
    (folder / "ca.pem").write_text("not read here")
    env_file = _write_dotenv("OLLAMA_CA_BUNDLE=ca.pem\n", folder / "a.env")
    settings = load_settings(Flags(env_file=str(env_file)), environ={})
    assert settings.ca_bundle == folder / "ca.pem"  # not ./ca.pem (the working directory)
    # From the command line or the environment, relative means the working directory.
    Path("ca.pem").write_text("not read here")
    assert load_settings(Flags(ca_bundle="ca.pem"), environ={}).ca_bundle == Path.cwd() / "ca.pem"
    # A missing one says where it looked and why there.
    _write_dotenv("OLLAMA_CA_BUNDLE=missing.pem\n", env_file)
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(env_file=str(env_file)), environ={})
    message = info.value.message
    assert f"OLLAMA_CA_BUNDLE=missing.pem (in {env_file}):" in message
    assert f"looked for {folder / 'missing.pem'}" in message
    assert "relative to that file's folder" in message


def test_setting_origin_names_flag_key_or_file(tmp_path: Path) -> None:
    _write_dotenv("OLLAMA_API_KEY=k\n")
    settings = load_settings(Flags(base_url="http://h:1"), environ={})
    assert settings.setting_origin("OLLAMA_BASE_URL") == "--base-url"
    assert settings.setting_origin("OLLAMA_API_KEY") == "OLLAMA_API_KEY in .env"
    other = _write_dotenv("OLLAMA_API_KEY=k\n", tmp_path / "x.env")
    settings = load_settings(Flags(env_file=str(other)), environ={"OLLAMA_BASE_URL": "h"})
    assert settings.setting_origin("OLLAMA_BASE_URL") == "OLLAMA_BASE_URL"
    assert settings.setting_origin("OLLAMA_API_KEY") == f"OLLAMA_API_KEY in {other}"


# --------------------------------------------------------------------------- URL parsing


@pytest.mark.parametrize(
    ("url", "user", "password"),
    [
        ("https://ollama-user:p%40ss@h.example", "ollama-user", "p@ss"),
        ("https://ollama-user:p%3Ass@h.example", "ollama-user", "p:ss"),
        ("https://ollama-user:p%2Fss@h.example", "ollama-user", "p/ss"),
        ("https://ollama-user:p%23ss@h.example", "ollama-user", "p#ss"),
        ("https://ollama-user:%40%3A%2F%23@h.example", "ollama-user", "@:/#"),
        ("https://us%40er:pw@h.example", "us@er", "pw"),
        ("https://user:pa@ss@h.example", "user", "pa@ss"),  # a raw '@' is tolerated
        ("https://user:pa:ss@h.example", "user", "pa:ss"),  # a raw ':' too
    ],
)
def test_percent_encoded_credentials(url: str, user: str, password: str) -> None:
    server = parse_base_url(url)
    assert (server.username, server.password) == (user, password)
    assert server.host == "h.example"
    assert password not in server.redacted() or password == "pw"
    assert "***" in server.redacted()
    assert "@" not in server.origin  # requests never carry userinfo


@pytest.mark.parametrize(
    ("text", "origin", "path"),
    [
        ("https://ollama.example.com/ollama", "https://ollama.example.com/ollama", "/ollama"),
        ("https://ollama.example.com/ollama/", "https://ollama.example.com/ollama", "/ollama"),
        ("http://h:8080/a/b", "http://h:8080/a/b", "/a/b"),
        ("https://ollama.example.com", "https://ollama.example.com", ""),
    ],
)
def test_path_prefix_is_kept(text: str, origin: str, path: str) -> None:
    server = parse_base_url(text)
    assert server.origin == origin
    assert server.path == path
    assert server.url("/api/tags") == origin + "/api/tags"


@pytest.mark.parametrize(
    ("text", "host", "port", "origin"),
    [
        ("http://[::1]:11434", "::1", 11434, "http://[::1]:11434"),
        ("[::1]:11434", "::1", 11434, "http://[::1]:11434"),
        ("https://[fe80::1]", "fe80::1", 443, "https://[fe80::1]"),
        ("https://u:p@[2001:db8::5]:8443/x", "2001:db8::5", 8443, "https://[2001:db8::5]:8443/x"),
    ],
)
def test_ipv6(text: str, host: str, port: int, origin: str) -> None:
    server = parse_base_url(text)
    assert (server.host, server.port, server.origin) == (host, port, origin)
    assert server.address == f"[{host}]:{port}"


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("192.168.1.100:11434", "http://192.168.1.100:11434"),
        ("192.168.1.100", "http://192.168.1.100:11434"),  # Ollama's default port
        ("ollama.lan:8080", "http://ollama.lan:8080"),
        ("http://ollama.lan", "http://ollama.lan"),  # explicit scheme: port 80
        ("HTTPS://Ollama.Example.com", "https://ollama.example.com"),
    ],
)
def test_no_scheme_means_http(text: str, origin: str) -> None:
    assert parse_base_url(text).origin == origin


def test_repr_and_str_hide_the_password() -> None:
    server = parse_base_url("https://ollama-user:s3cr3t@h.example")
    assert "s3cr3t" not in repr(server)
    assert "s3cr3t" not in str(server)
    settings = load_settings(
        Flags(base_url="https://ollama-user:s3cr3t@h.example"), environ={"OLLAMA_API_KEY": ""}
    )
    assert "s3cr3t" not in repr(settings)


# --------------------------------------------------------------------------- secrets in errors

#: A .env line whose password breaks the URL, and the parts of the password that must not show.
BROKEN_PASSWORD_LINES = [
    "OLLAMA_BASE_URL=https://ollama-user:Secret #Canary@host.example",  # ' #' starts a comment
    'OLLAMA_BASE_URL="https://ollama-user:Sec"retCanary@host.example"',  # a quote inside
    "OLLAMA_BASE_URL='https://ollama-user:Sec'retCanary@host.example'",
    'OLLAMA_BASE_URL="https://ollama-user:SecretCanary@host.example',  # unterminated quote
    "OLLAMA_BASE_URL=https://ollama-user:SecretCanary",  # no host at all
    "OLLAMA_BASE_URL=https://ollama-user:SecretCanary@",
    "OLLAMA_BASE_URL=https://ollama-user:Secret/Canary:9@host.example",  # a raw '/' and ':'
    "OLLAMA_BASE_URL=https://ollama-user:Secret?Canary@host.example",
    "OLLAMA_BASE_URL=https://ollama-user:Secret[Canary@host.example",  # a raw "["
    "OLLAMA_BASE_URL=ollama-user:SecretCanary",  # no scheme either
]


@pytest.mark.parametrize("line", BROKEN_PASSWORD_LINES)
def test_a_password_that_breaks_the_url_is_never_echoed(line: str) -> None:
    _write_dotenv(line + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ={})
    shown = f"{info.value.message}\n{info.value.hint}"
    assert "(in .env)" in shown
    for piece in ("Secret", "Canary", "retCanary"):
        assert piece not in shown, shown


@pytest.mark.parametrize(
    "url",
    [
        "https://ollama-user:pa/ss@host.example",
        "https://ollama-user:pa#ss@host.example",
        "https://ollama-user:pa:ss/w@host.example",
        "https://ollama-user:SecretCanary",
    ],
)
def test_a_split_password_explains_percent_encoding(url: str) -> None:
    error = _config_error(url)
    assert "percent-encoded" in error.message
    assert "%2F" in error.message and "%40" in error.message
    assert "ollama-user:***" in error.message


def test_http_with_one_slash_is_rejected_not_read_as_a_host_called_http() -> None:
    error = _config_error("http:/host.example")
    assert "'://'" in error.message


@pytest.mark.parametrize("value", ["9999999999", "1e300", "604801"])
def test_a_timeout_too_large_for_the_clock_is_rejected(value: str) -> None:
    for key in ("GREETING_TIMEOUT_SECONDS", "BENCHMARK_TIMEOUT_SECONDS"):
        with pytest.raises(ConfigError) as info:
            load_settings(environ={key: value})
        assert f"{key}={value}" in info.value.message
        assert "at most 604800" in info.value.message
    assert load_settings(environ={"BENCHMARK_TIMEOUT_SECONDS": "604800"}).benchmark_timeout_s


def test_an_env_file_that_is_binary_or_a_directory_gets_its_own_message(tmp_path: Path) -> None:
    binary = tmp_path / "bin.env"
    binary.write_bytes(b"\xff\xfe\x00OLLAMA\x80")
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(env_file=str(binary)), environ={})
    assert "not UTF-8 text" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(env_file=str(tmp_path)), environ={})
    assert "directory" in info.value.message
