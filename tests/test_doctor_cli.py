"""``ollamakit doctor`` as a user runs it: a subprocess, no terminal, real loopback servers.

For every failure class: exit status 2, the message and fix a user needs (key words), and no
traceback. For a healthy server: exit 0, every step ✔, and the ``--json`` document's shape.
A canary password in the URL must never appear in any output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from ollamakit.diagnostics import STEPS
from ollamakit.i18n import set_language, t
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, run_in_thread
from tests.proxyish import (
    BUSY,
    NGINX_405,
    NGINX_502,
    NGINX_504,
    PORTAL,
    Canned,
    CannedServer,
    closed_port,
    generate_chunks,
    ollama_routes,
    server_tls_context,
)
from tests.support import CLIResult, assert_no_traceback, run_program

CANARY = "Canary-Pw-7f3a9"


def doctor(*args: str, env: dict[str, str] | None = None) -> CLIResult:
    result = run_program(["doctor", *args], env=env, timeout=60)
    assert_no_traceback(result)
    assert CANARY not in result.output
    return result


def failed(result: CLIResult, *words: str) -> None:
    assert result.returncode == 2, result.output
    assert "✘" in result.stdout
    for word in words:
        assert word in result.stdout, result.stdout


def sim_config(*faults: Fault, **spec: Any) -> SimConfig:
    options: dict[str, Any] = {"load_ms": 1, "eval_tps": 150, "reply_tokens": 40}
    options.update(spec)
    return SimConfig(models=(ModelSpec("m:1b", faults=faults, **options),), stall_s=5)


# --------------------------------------------------------------------------- healthy


@pytest.fixture(scope="module")
def sim_url() -> Iterator[str]:
    with run_in_thread(sim_config()) as sim:
        yield sim.url


def test_healthy_server(sim_url: str) -> None:
    result = doctor("--base-url", sim_url)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    step_lines = [line for line in lines if line[:2] in ("✔ ", "! ", "✘ ", "- ")]
    assert len(step_lines) == len(STEPS)
    assert all(line.startswith("✔") for line in step_lines if "TLS" not in line)
    assert "All checks passed." in result.stdout
    assert "\x1b[" not in result.output  # no colour codes when not a terminal
    out = " ".join(result.stdout.split())
    assert "first token after" in out  # both rates, labelled as in the benchmark
    assert "· eval rate " in out and " tok/s · client decode " in out and "tokens/s" not in out


def test_json_document(sim_url: str) -> None:
    result = doctor("--base-url", f"http://ollama-user:{CANARY}@{sim_url[7:]}", "--json")
    assert result.returncode == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert doc["healthy"] is True and doc["exit_status"] == 0
    assert doc["server"].startswith("http://ollama-user:***@127.0.0.1:")
    assert doc["tool"]["name"] == "ollamakit"
    assert [s["name"] for s in doc["steps"]] == list(STEPS)
    for step in doc["steps"]:
        assert set(step) == {
            "name",
            "title",
            "status",
            "elapsed_ms",
            "summary",
            "notes",
            "details",
            "fix",
        }
        assert step["status"] in ("ok", "warn", "fail", "skip")
    steps = {s["name"]: s for s in doc["steps"]}
    assert steps["auth"]["details"]["credentials_sent"] is True
    assert steps["generate"]["details"]["eval_tps"] > 0
    assert steps["streaming"]["details"]["verdict"] == "streaming"
    assert steps["rtt"]["details"]["median_ms"] > 0


def test_json_of_a_failure() -> None:
    result = doctor("--base-url", f"http://127.0.0.1:{closed_port()}", "--json")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["healthy"] is False
    tcp = next(s for s in doc["steps"] if s["name"] == "tcp")
    assert tcp["status"] == "fail"
    assert tcp["details"]["error"] == "ConnectionRefused"
    assert "uv run ollamakit sim" in tcp["fix"]


def test_no_generate(sim_url: str) -> None:
    result = doctor("--base-url", sim_url, "--no-generate")
    assert result.returncode == 0
    assert "skipped (--no-generate)" in result.stdout
    assert "eval rate" not in result.stdout


def test_configuration_from_dotenv(sim_url: str) -> None:
    Path(".env").write_text(f"OLLAMA_BASE_URL={sim_url}\n")
    result = doctor("--no-generate")
    assert result.returncode == 0
    assert "OLLAMA_BASE_URL ← .env" in result.stdout


def test_chinese(sim_url: str) -> None:
    result = doctor("--base-url", sim_url, "--no-generate", "--lang", "zh-TW")
    assert result.returncode == 0
    assert "身分驗證" in result.stdout and "所有檢查皆通過" in result.stdout


def test_warnings_do_not_fail(sim_url: str) -> None:
    result = doctor("--base-url", sim_url, "--no-generate", env={"OLLAMA_HOST": "0.0.0.0"})
    assert result.returncode == 0
    assert "! warning" in result.stdout
    assert "OLLAMA_HOST=0.0.0.0 is set here" in result.stdout


def test_buffering_proxy_warns() -> None:
    lump = Canned(
        200,
        content_type="application/x-ndjson",
        chunks=generate_chunks("tiny:latest", 12, 25),
        delay_s=0.3,
    )
    with CannedServer(ollama_routes(generate=lump)) as server:
        result = doctor("--base-url", server.url)
    assert result.returncode == 0
    assert "! streaming" in result.stdout
    assert "one lump" in result.stdout and "proxy_buffering off" in result.stdout


# --------------------------------------------------------------------------- connecting


def test_refused() -> None:
    result = doctor("--base-url", f"http://127.0.0.1:{closed_port()}")
    # nothing on this machine: is it running, or try the simulator; no remote-access advice
    failed(result, "✘ TCP connect", "refused", "running on this machine", "uv run ollamakit sim")
    assert "/tcp" not in result.stdout and "remote access" not in result.stdout


def test_other_commands_point_to_the_doctor() -> None:
    result = run_program(["bench", "--base-url", f"http://127.0.0.1:{closed_port()}", "--auto"])
    assert result.returncode == 2, result.output
    assert_no_traceback(result)
    assert "refused" in result.stderr
    assert "ollamakit doctor" in " ".join(result.stderr.split())
    itself = doctor("--base-url", f"http://127.0.0.1:{closed_port()}").output
    assert t("errors.see_doctor") not in itself  # the doctor does not send you to itself


def test_dns() -> None:
    failed(doctor("--base-url", "http://ollama.invalid:11434"), "✘ DNS", "ollama.invalid")


# --------------------------------------------------------------------------- TLS


# ``ca`` (one per session) comes from tests/conftest.py.


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[CannedServer]:
    with CannedServer(ollama_routes(), tls=server_tls_context(ca)) as server:
        yield server


def test_tls_untrusted(tls_server: CannedServer) -> None:
    failed(doctor("--base-url", tls_server.url), "✘ TLS", "not trusted", "--ca-bundle")


def test_tls_trusted_with_ca_bundle(
    tls_server: CannedServer, ca: trustme.CA, tmp_path: Path
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = doctor("--base-url", tls_server.url, "--ca-bundle", str(ca_file), "--no-generate")
    assert result.returncode == 0, result.stdout
    assert "✔ TLS" in result.stdout and "verified" in result.stdout


def test_https_to_plain_port() -> None:
    with CannedServer(ollama_routes()) as server:
        result = doctor("--base-url", f"https://127.0.0.1:{server.port}")
    failed(result, "✘ TLS", f"http://127.0.0.1:{server.port}")


def test_http_to_tls_port(tls_server: CannedServer) -> None:
    result = doctor("--base-url", f"http://127.0.0.1:{tls_server.port}")
    failed(result, "✘ GET /", f"https://127.0.0.1:{tls_server.port}", "expects TLS (https://)")
    assert "handshake" not in result.stdout  # plain http:// never attempted one


# --------------------------------------------------------------------------- HTTP


def _proxy_answers(route: Canned, *args: str, url_userinfo: str = "") -> CLIResult:
    with CannedServer({"*": route}) as server:
        url = server.url.replace("http://", f"http://{url_userinfo}")
        return doctor("--base-url", url, *args)


def test_401_without_credentials() -> None:
    route = Canned(401, headers={"WWW-Authenticate": 'Basic realm="Ollama Server"'})
    result = _proxy_answers(route)
    failed(result, "✘ authentication", "401", "no credentials", "requires a login")


def test_401_with_wrong_credentials() -> None:
    route = Canned(401, headers={"WWW-Authenticate": 'Basic realm="Ollama Server"'})
    result = _proxy_answers(route, url_userinfo=f"ollama-user:{CANARY}@")
    failed(result, "✘ authentication", "Basic auth as ollama-user", "rejected")


def test_403_host_header() -> None:
    """Ollama's Host check (an empty 403) behind nginx: the login was accepted; GET / fails."""
    result = _proxy_answers(Canned(403), url_userinfo=f"ollama-user:{CANARY}@")
    failed(result, "✘ GET /", "403", "proxy_set_header Host localhost:11434;")
    auth = next(line for line in result.stdout.splitlines() if "authentication" in line)
    assert auth.startswith("✔") and "accepted by the proxy" in auth
    without_login = _proxy_answers(Canned(403))
    failed(without_login, "✘ GET /", "proxy_set_header Host")
    assert "not judged: HTTP 403" in without_login.stdout


def test_403_page_of_a_proxy_rule_stays_under_authentication() -> None:
    page = NGINX_502.replace("502 Bad Gateway", "403 Forbidden")
    result = _proxy_answers(Canned(403, page, content_type="text/html"))
    failed(result, "✘ authentication", "403")


@pytest.mark.parametrize(
    ("status", "page", "fix", "not_fix"),
    [
        (502, NGINX_502, "127.0.0.1:11434 in the shipped configs", "proxy_read_timeout"),
        (504, NGINX_504, "proxy_read_timeout 600s", "127.0.0.1:11434"),
    ],
)
def test_gateway(status: int, page: str, fix: str, not_fix: str) -> None:
    result = _proxy_answers(Canned(status, page, content_type="text/html"))
    failed(result, "✘ GET /", f"HTTP {status}", "Ollama behind it", fix)
    assert not_fix not in result.stdout
    # No credentials sent: a 502 says nothing about a login.
    assert f"not judged: HTTP {status}" in result.stdout


def test_gateway_after_login_says_the_login_got_through() -> None:
    """nginx checks auth_basic before it proxies: a 502 means the password was accepted."""
    route = Canned(502, NGINX_502, content_type="text/html")
    result = _proxy_answers(route, url_userinfo=f"ollama-user:{CANARY}@")
    failed(result, "✘ GET /", "HTTP 502")
    auth = next(line for line in result.stdout.splitlines() if "authentication" in line)
    assert auth.startswith("✔")
    assert (
        "Basic auth as ollama-user: accepted by the proxy (the request got past auth_basic" in auth
    )


def test_401_names_the_user_and_a_curl_line_without_the_password() -> None:
    route = Canned(401, headers={"WWW-Authenticate": 'Basic realm="Ollama"'})
    with CannedServer({"*": route}) as server:
        url = server.url.replace("http://", f"http://ollama-user:{CANARY}@")
        result = doctor("--base-url", url)
    failed(
        result,
        "The password for ollama-user was rejected (Basic auth from --base-url)",
        f"curl -u ollama-user {server.url}/api/tags",
        "curl asks for the password",
    )
    zh = _proxy_answers(route, "--lang", "zh-TW", url_userinfo=f"ollama-user:{CANARY}@")
    failed(zh, "身分驗證失敗（HTTP 401）", '（realm "Ollama"）', "ollama-user 的密碼被拒絕")
    assert "身份" not in zh.stdout


def test_html_page() -> None:
    result = _proxy_answers(Canned(200, PORTAL, content_type="text/html"))
    failed(result, "✘ GET /", "Guest Wi-Fi - Sign in")


def test_redirect_to_https() -> None:
    def to_https(request: Any) -> Canned:
        return Canned(301, headers={"Location": f"https://ollama.example.com{request.path}"})

    with CannedServer({"*": to_https}) as server:
        result = doctor("--base-url", server.url)
    failed(result, "✘ GET /", "301", "OLLAMA_BASE_URL=https://ollama.example.com")


def _generate_answers(route: Canned, *args: str) -> CLIResult:
    with CannedServer(ollama_routes(generate=route)) as server:
        return doctor("--base-url", server.url, *args)


def test_405_on_generate() -> None:
    result = _generate_answers(Canned(405, NGINX_405, content_type="text/html"))
    failed(result, "✘ generation", "405", "POST")


def test_503_busy() -> None:
    result = _generate_answers(Canned(503, BUSY, content_type="application/json"))
    failed(result, "✘ generation", "busy", "OLLAMA_MAX_QUEUE")


# --------------------------------------------------------------------------- the simulator's faults


def _sim_doctor(
    *faults: Fault, args: tuple[str, ...] = (), env: dict[str, str] | None = None
) -> CLIResult:
    with run_in_thread(sim_config(*faults)) as sim:
        return doctor("--base-url", sim.url, *args, env=env)


def test_model_not_found() -> None:
    result = _sim_doctor(args=("--model", "llama9"))
    failed(result, "✘ generation", "llama9", "ollama pull llama9")


def test_busy_from_the_simulator() -> None:
    failed(_sim_doctor(Fault(FaultKind.BUSY)), "✘ generation", "503", "maximum pending")


def test_mid_stream_error() -> None:
    result = _sim_doctor(Fault(FaultKind.ERROR_AFTER, 3))
    failed(result, "✘ generation", "middle of the reply", "an error was encountered")


def test_cut_stream() -> None:
    result = _sim_doctor(Fault(FaultKind.CUT_AFTER, 3))
    failed(result, "✘ generation", "ended before it was complete")


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--timeout", "0.5"), None), ((), {"BENCHMARK_TIMEOUT_SECONDS": "0.5"})],
)
def test_stall_is_a_read_timeout(args: tuple[str, ...], env: dict[str, str] | None) -> None:
    result = _sim_doctor(Fault(FaultKind.STALL_AFTER, 3), args=args, env=env)
    failed(result, "✘ generation", "sent nothing for 0.5 s", "BENCHMARK_TIMEOUT_SECONDS")


def test_bad_timeout_flag_is_a_config_error() -> None:
    result = doctor("--base-url", "http://127.0.0.1:1", "--timeout", "-1")
    assert result.returncode == 2
    assert "Invalid setting --timeout=-1.0" in result.stderr


def test_missing_ca_bundle_names_the_flag_and_the_path() -> None:
    result = doctor("--base-url", "https://127.0.0.1:1", "--ca-bundle", "nothere.pem")
    assert result.returncode == 2
    assert "Invalid setting --ca-bundle=nothere.pem" in result.stderr
    assert "nothere.pem)" in result.stderr and "looked for /" in result.stderr
    assert "OLLAMA_CA_BUNDLE" not in result.stderr


def test_json_of_a_configuration_error() -> None:
    """--json promises a document on stdout, also when the settings cannot be loaded."""
    result = doctor("--json", "--base-url", "https://127.0.0.1:1", "--ca-bundle", "nothere.pem")
    assert result.returncode == 2
    doc = json.loads(result.stdout)
    assert doc["healthy"] is False and doc["exit_status"] == 2
    assert doc["error"]["type"] == "ConfigError"
    assert "--ca-bundle=nothere.pem" in doc["error"]["message"]
    assert [s["name"] for s in doc["steps"]] == list(STEPS)
    config, *rest = doc["steps"]
    assert config["status"] == "fail" and "--ca-bundle" in config["summary"]
    assert all(step["status"] == "skip" for step in rest)


# --------------------------------------------------------------------------- on a terminal


def _on_terminal(args: list[str], columns: int) -> list[str]:
    """Run the program in a pseudo-terminal ``columns`` wide; its lines, colours removed."""
    import os
    import re
    import sys

    import pexpect

    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ollamakit", *args],
        env=env,
        dimensions=(50, columns),
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before or "")
    # The spinner redraws its line with \r; keep what is left on each line at the end.
    return [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_long_lines_wrap_to_the_terminal_with_a_hanging_indent(lang: str) -> None:
    from rich.cells import cell_len

    route = Canned(401, headers={"WWW-Authenticate": 'Basic realm="Ollama"'})
    with CannedServer({"*": route}) as server:
        url = server.url.replace("http://", f"http://ollama-user:{CANARY}@")
        lines = _on_terminal(["doctor", "--base-url", url, "--lang", lang], 80)
    lines = [line.rstrip() for line in lines if line.strip()]
    assert lines, lines
    assert max(cell_len(line) for line in lines) <= 80, lines
    step = next(i for i, line in enumerate(lines) if line.startswith("✘"))
    # The value column: where the step's text starts on its first line.
    column = cell_len(lines[step]) - cell_len(lines[step].split("  ")[-1])
    end = next(i for i, x in enumerate(lines) if i > step and x.startswith("- "))
    following = lines[step + 1 : end]
    assert len(following) >= 4, lines  # note, fix and curl line, wrapped
    for line in following:
        assert line[:column].strip() == "", (column, line)  # nothing left of the column
    # Wrapped text is the same text: the curl line is whole once the pieces are joined.
    joined = " ".join(line.strip() for line in following)
    assert "curl -u ollama-user" in joined
    assert CANARY not in "\n".join(lines)


def test_not_on_a_terminal_lines_stay_whole() -> None:
    route = Canned(401, headers={"WWW-Authenticate": 'Basic realm="Ollama"'})
    result = _proxy_answers(route, url_userinfo=f"ollama-user:{CANARY}@")
    fix = next(line for line in result.stdout.splitlines() if "→" in line)
    assert "was rejected" in fix and "htpasswd file." in fix  # one line, however long
    assert len(fix) > 120


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_commands_to_copy_stay_whole_at_80_columns(lang: str) -> None:
    from rich.cells import cell_len

    with CannedServer({"*": Canned(403)}) as server:
        url = server.url.replace("http://", f"http://ollama-user:{CANARY}@")
        lines = _on_terminal(["doctor", "--base-url", url, "--lang", lang], 80)
    lines = [line.rstrip() for line in lines if line.strip()]
    assert max(cell_len(line) for line in lines) <= 80, lines
    # the nginx line on a line of its own, whole, nothing else on it
    assert "proxy_set_header Host localhost:11434;" in [line.strip() for line in lines], lines
    with CannedServer({"*": Canned(401, headers={"WWW-Authenticate": "Basic"})}) as server:
        url = server.url.replace("http://", f"http://ollama-user:{CANARY}@")
        lines = _on_terminal(["doctor", "--base-url", url, "--lang", lang], 80)
    curl = f"curl -u ollama-user {server.url}/api/tags"
    assert curl in [line.strip() for line in lines], lines


def test_zh_tw_help_headings_end_in_a_full_width_colon() -> None:
    result = doctor("--help", "--lang", "zh-TW")
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert "選項：" in lines and "選項:" not in lines
    assert "options:" in doctor("--help").stdout.splitlines()  # English keeps its colon


@pytest.mark.parametrize("language", ["en", "zh-TW"])
def test_an_openai_compatible_server_gets_its_own_step_titles(start_sim, language: str) -> None:
    """On /v1 the root step does not ask GET / and the version step not /api/version."""
    sim = start_sim(SimConfig(models=sim_config().models, engine="llama.cpp"))
    set_language(language)  # the titles the program should print (reset after each test)
    result = doctor("--base-url", sim.url, "--lang", language)
    assert result.returncode == 0, result.output
    titles = [line[2:].split("  ")[0] for line in result.stdout.splitlines() if line[:2] == "✔ "]
    assert t("doctor.title_root_openai") in titles and t("doctor.title_version_openai") in titles
    assert "GET /" not in titles and "/api/version" not in titles
    doc = json.loads(doctor("--base-url", sim.url, "--json", "--lang", language).stdout)
    steps = {s["name"]: s["title"] for s in doc["steps"]}
    assert steps["root"] == t("doctor.title_root_openai")
    assert steps["version"] == t("doctor.title_version_openai")
