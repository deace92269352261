"""The doctor's checks, one by one and as a run, in-process against loopback servers.

Each check is tested for the finding it exists to make (the right status, the error class
behind a failure, the words of the fix), and the run for its ordering rules: the steps after
a failure are skipped, warnings do not fail the run, the streaming check tells a buffering
proxy from a streaming path.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from ollamakit.client import OllamaClient
from ollamakit.config import Flags, Settings, load_settings
from ollamakit.diagnostics import (
    GENERATE_NUM_PREDICT,
    STEPS,
    CheckResult,
    Status,
    StreamedChunk,
    StreamVerdict,
    analyze_streaming,
    check_auth,
    check_config,
    check_dns,
    check_tcp,
    check_tls,
    check_warnings,
    diagnose,
    env_proxy,
    exit_status,
    parse_created_at,
    pick_models,
)
from ollamakit.errors import (
    AuthError,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    ForbiddenError,
    GatewayError,
    ModelNotFound,
    TLSMismatch,
    TLSVerifyFailed,
)
from ollamakit.i18n import set_language
from ollamakit.sim import ModelSpec, SimConfig, run_in_thread
from tests.proxyish import (
    NGINX_502,
    Blackhole,
    Canned,
    CannedServer,
    closed_port,
    generate_chunks,
    model_entry,
    ollama_json,
    ollama_routes,
    server_tls_context,
)
from tests.support import settings_for

MS = 1_000_000
NGINX_403 = NGINX_502.replace("502 Bad Gateway", "403 Forbidden")  # a deny rule's page


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results if r.name != "warning"}


def run(settings: Settings, **kwargs: Any) -> list[CheckResult]:
    return list(diagnose(settings, **kwargs))


# --------------------------------------------------------------------------- streaming analysis


def _chunks(created_ms: list[float], arrived_ms: list[float]) -> list[StreamedChunk]:
    return [
        StreamedChunk(int(a * MS), int(c * MS)) for c, a in zip(created_ms, arrived_ms, strict=True)
    ]


def test_streamed_reply_is_recognised() -> None:
    created = [i * 25.0 for i in range(12)]  # 275 ms of generation
    arrived = [1000 + c + (3 if i % 3 else 0) for i, c in enumerate(created)]  # jitter
    analysis = analyze_streaming(_chunks(created, arrived))
    assert analysis.verdict is StreamVerdict.STREAMING
    assert analysis.ratio is not None and 0.9 < analysis.ratio < 1.1


def test_one_lump_is_buffered() -> None:
    created = [i * 25.0 for i in range(12)]
    arrived = [5000.0] * 11 + [5000.4]
    analysis = analyze_streaming(_chunks(created, arrived))
    assert analysis.verdict is StreamVerdict.BUFFERED
    assert analysis.server_spread_ms == pytest.approx(275)


def test_two_lumps_of_a_proxy_buffer_are_buffered() -> None:
    # nginx flushes a full 4 KB buffer early, then the rest at the end: still lumps.
    created = [i * 25.0 for i in range(12)]
    arrived = [3000.0] * 10 + [3030.0] * 2
    assert analyze_streaming(_chunks(created, arrived)).verdict is StreamVerdict.BUFFERED


def test_too_short_or_too_few_is_not_judged() -> None:
    quick = [i * 5.0 for i in range(12)]  # 55 ms: could be TCP coalescing
    assert analyze_streaming(_chunks(quick, [0.0] * 12)).verdict is StreamVerdict.TOO_SHORT
    few = [0.0, 200.0, 400.0]
    assert analyze_streaming(_chunks(few, [0.0] * 3)).verdict is StreamVerdict.TOO_SHORT


def test_no_timestamps() -> None:
    chunks = [StreamedChunk(i, None) for i in range(10)]
    assert analyze_streaming(chunks).verdict is StreamVerdict.NO_TIMESTAMPS


@pytest.mark.parametrize(
    ("text", "nanos"),
    [
        ("2025-10-26T17:21:21Z", 0),
        ("2025-10-26T17:21:21.5Z", 500_000_000),
        ("2025-10-26T17:21:21.196249Z", 196_249_000),
        ("2025-10-26T17:21:21.196249123Z", 196_249_123),
        ("2025-10-26T10:21:21.000000001-07:00", 1),
    ],
)
def test_parse_created_at(text: str, nanos: int) -> None:
    base = parse_created_at("2025-10-26T17:21:21Z")
    assert base is not None
    assert parse_created_at(text) == base + nanos


def test_pick_models_prefers_small_generative_models() -> None:
    models: list[Any] = [
        model_entry("llama3.1:70b", 40_000_000_000),
        model_entry("all-minilm:latest", 45_000_000, family="bert"),
        model_entry("nomic-embed-text:latest", 270_000_000, family="nomic-bert"),
        model_entry("qwen2.5:0.5b", 400_000_000, family="qwen2"),
        {**model_entry("vision:1b", 300_000_000), "capabilities": ["vision"]},
    ]
    assert pick_models(models) == ["qwen2.5:0.5b", "llama3.1:70b"]


# --------------------------------------------------------------------------- configuration


def test_config_shows_redacted_url_and_sources() -> None:
    Path(".env").write_text("BENCHMARK_TIMEOUT_SECONDS=9\n")
    settings = load_settings(
        Flags(base_url="https://ollama-user:pw-canary@ollama.example.com"),
        environ={"GREETING_TIMEOUT_SECONDS": "5"},
    )
    result = check_config(settings)
    assert result.status is Status.OK
    assert result.summary == "https://ollama-user:***@ollama.example.com"
    text = " ".join(result.notes)
    assert "OLLAMA_BASE_URL ← command line" in text
    assert "GREETING_TIMEOUT_SECONDS ← environment" in text
    assert "BENCHMARK_TIMEOUT_SECONDS ← .env" in text
    assert result.details["credentials"] == "basic"
    assert "pw-canary" not in repr(result.to_json())


def test_config_sources_name_an_env_file_once(tmp_path: Path) -> None:
    Path(".env").write_text("OLLAMA_MODEL=m\n")
    result = check_config(load_settings(environ={}))
    assert "OLLAMA_MODEL ← .env;" in result.notes[0]  # ./.env: just ".env", no "(.env)"
    other = tmp_path / "lan.env"
    other.write_text("OLLAMA_BASE_URL=http://gpu-box:11434\nOLLAMA_MODEL=m\n")
    settings = load_settings(Flags(env_file=str(other)), environ={"OLLAMAKIT_LANG": "en"})
    note = check_config(settings).notes[0]
    assert f"OLLAMAKIT_LANG ← environment, OLLAMA_BASE_URL + OLLAMA_MODEL ← {other};" in note
    assert note.count(str(other)) == 1


def test_config_fails_on_password_plus_api_key() -> None:
    settings = settings_for("http://u:p@127.0.0.1:1", environ={"OLLAMA_API_KEY": "k"})
    results = run(settings)
    assert results[0].status is Status.FAIL
    assert "OLLAMA_API_KEY" in results[0].summary
    assert all(r.status is Status.SKIP for r in results[1:])
    assert exit_status(results) == 2


def test_warnings() -> None:
    settings = settings_for(
        "http://u:p@192.168.1.50:11434", insecure=True, environ={"OLLAMA_HOST": "0.0.0.0:11434"}
    )
    found = {r.details["kind"]: r for r in check_warnings(settings)}
    assert set(found) == {"credentials_in_clear", "insecure", "ollama_host_env"}
    assert all(r.status is Status.WARN for r in found.values())
    assert "http://" in found["credentials_in_clear"].summary
    assert "https://" in (found["credentials_in_clear"].fix or "")
    assert "certbot certonly --nginx -d ollama.example.com" in (
        found["credentials_in_clear"].fix or ""
    )
    assert "--ca-bundle" in (found["insecure"].fix or "")
    assert "OLLAMA_BASE_URL" in found["ollama_host_env"].summary
    assert "systemctl edit" in (found["ollama_host_env"].fix or "")
    assert check_warnings(settings_for("https://u:p@ollama.example.com")) == []


def test_env_proxy_is_noticed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxyuser:proxypw@proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.lan")
    assert env_proxy(settings_for("https://ollama.example.com").base_url) == (
        "http://***@proxy.corp:3128"
    )
    assert env_proxy(settings_for("https://box.lan").base_url) is None
    assert env_proxy(settings_for("http://ollama.example.com").base_url) is None


# --------------------------------------------------------------------------- DNS, TCP, TLS


def test_dns() -> None:
    ok = check_dns(settings_for("http://localhost:11434").base_url)
    assert ok.status is Status.OK
    assert ok.details["addresses"]
    ip = check_dns(settings_for("http://127.0.0.1:11434").base_url)
    assert ip.status is Status.OK and "IP address" in ip.summary
    bad = check_dns(settings_for("http://no-such-host.invalid").base_url)
    assert bad.status is Status.FAIL
    assert isinstance(bad.error, DNSFailure)
    assert "IP address" in (bad.fix or "")


def test_tcp_refused_with_seed_fixes() -> None:
    result = check_tcp(settings_for(f"http://127.0.0.1:{closed_port()}"))
    assert result.status is Status.FAIL
    assert isinstance(result.error, ConnectionRefused)
    fix = result.fix or ""
    # loopback: is it running, and the simulator; no remote access, no firewall
    assert "running on this machine" in fix and "uv run ollamakit sim" in fix
    assert "0.0.0.0" not in fix and "/tcp" not in fix


@pytest.mark.parametrize(
    ("host", "port", "present", "absent"),
    [
        ("localhost", 11434, ["uv run ollamakit sim"], ["/tcp", "remote access"]),
        ("127.0.0.1", 8080, ["uv run ollamakit sim"], ["/tcp", "remote access"]),
        ("10.0.0.5", 8080, ["is 8080 the right port", "8080/tcp"], ["11434/tcp", "remote"]),
        ("10.0.0.5", 11434, ["remote access", "OLLAMA_HOST=0.0.0.0:11434", "11434/tcp"], []),
    ],
)
def test_refused_advice_fits_where_the_refusal_came_from(
    host: str, port: int, present: list[str], absent: list[str]
) -> None:
    hint = ConnectionRefused("refused", host=host, port=port).hint
    for word in present:
        assert word in hint, hint
    for word in absent:
        assert word not in hint, hint


def test_tcp_refused_on_default_url_says_configure_it() -> None:
    settings = load_settings(environ={})
    settings = dataclasses.replace(
        settings,
        base_url=dataclasses.replace(settings.base_url, host="127.0.0.1", port=closed_port()),
    )
    result = check_tcp(settings)
    assert "OLLAMA_BASE_URL is not set" in (result.fix or "")


def test_tcp_timeout() -> None:
    with Blackhole() as hole:
        settings = dataclasses.replace(
            settings_for(f"http://127.0.0.1:{hole.port}"), connect_timeout_s=0.3
        )
        result = check_tcp(settings)
    assert result.status is Status.FAIL
    assert isinstance(result.error, ConnectTimeout)
    assert "ufw allow" in (result.fix or "")


def test_tcp_ok() -> None:
    with CannedServer() as server:
        result = check_tcp(settings_for(server.url))
    assert result.status is Status.OK
    assert result.details["address"] == f"127.0.0.1:{server.port}"
    assert result.elapsed_ms is not None


@pytest.fixture
def ca_file(ca_file: Path) -> str:
    """The root ``ca_file`` (session CA, tests/conftest.py), as the string a flag holds."""
    return str(ca_file)


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[CannedServer]:
    with CannedServer(ollama_routes(), tls=server_tls_context(ca)) as server:
        yield server


def test_tls_untrusted(tls_server: CannedServer) -> None:
    result = check_tls(settings_for(tls_server.url))
    assert result.status is Status.FAIL
    assert isinstance(result.error, TLSVerifyFailed)
    assert "--ca-bundle" in (result.fix or "") and "Let's Encrypt" in (result.fix or "")
    assert "certbot certonly --nginx" in (result.fix or "")
    details = result.details
    assert details["verified"] is False
    # Said in words: who issued it, and that it is not trusted; OpenSSL's words in brackets.
    assert details["issuer"].startswith("O=trustme")
    assert details["reason"] == "unable to get local issuer certificate"
    assert f"it was issued by {details['issuer']}, which is not a trusted CA" in result.summary
    assert result.summary.endswith("[unable to get local issuer certificate]")


def test_tls_untrusted_in_chinese(tls_server: CannedServer) -> None:
    set_language("zh-TW")
    result = check_tls(settings_for(tls_server.url))
    assert "TLS 憑證不受信任：簽發者 O=trustme" in result.summary
    assert "不是受信任的 CA（此處信任：公開 CA）" in result.summary
    assert "sudo certbot certonly --nginx" in (result.fix or "")


def test_tls_trusted_shows_the_certificate(tls_server: CannedServer, ca_file: str) -> None:
    result = check_tls(settings_for(tls_server.url, ca_bundle=ca_file))
    assert result.status is Status.OK, result.summary
    details = result.details
    assert details["verified"] is True
    assert "trustme" in details["issuer"]
    assert details["expires_in_days"] > 300
    assert "ca.pem" in details["trust"]
    assert "verified" in result.summary


def test_tls_insecure_is_a_warning(tls_server: CannedServer) -> None:
    result = check_tls(settings_for(tls_server.url, insecure=True))
    assert result.status is Status.WARN
    assert "NOT trusted: it was issued by O=trustme" in result.summary


def test_tls_to_plain_http_port() -> None:
    with CannedServer(ollama_routes()) as server:
        result = check_tls(settings_for(f"https://127.0.0.1:{server.port}"))
    assert result.status is Status.FAIL
    assert isinstance(result.error, TLSMismatch)
    assert f"http://127.0.0.1:{server.port}" in (result.fix or "")


def test_tls_silent_server_times_out() -> None:
    # A listener that completes TCP handshakes (the kernel does) but never says a word.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = dataclasses.replace(
            settings_for(f"https://127.0.0.1:{port}"), connect_timeout_s=0.3
        )
        result = check_tls(settings)
    assert result.status is Status.FAIL
    assert isinstance(result.error, ConnectTimeout)


def test_tls_skipped_for_http() -> None:
    assert check_tls(settings_for("http://127.0.0.1:1")).status is Status.SKIP


# --------------------------------------------------------------------------- authentication


def _auth(routes: dict[str, Any], url_prefix: str = "") -> CheckResult:
    with CannedServer(routes) as server:
        url = server.url.replace("http://", f"http://{url_prefix}")
        settings = settings_for(url)
        with OllamaClient(settings) as client:
            return check_auth(client, settings)


def test_auth_401_notes_whether_credentials_were_sent() -> None:
    unauthorized = Canned(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
    without = _auth({"*": unauthorized})
    assert without.status is Status.FAIL
    assert isinstance(without.error, AuthError)
    assert "no credentials" in without.notes[0]
    assert without.details["credentials_sent"] is False
    with_creds = _auth({"*": unauthorized}, "ollama-user:pw@")
    assert "Basic auth as ollama-user" in with_creds.notes[0]
    assert "rejected" in (with_creds.fix or "")


def test_auth_403_from_a_proxy_page_names_the_proxy_rule() -> None:
    """A 403 *page* is the proxy's own rule (allow/deny, WAF); only Ollama's Host check answers
    an empty 403, and only that one is fixed with ``proxy_set_header Host`` (issue 9)."""
    result = _auth({"*": Canned(403, NGINX_403, content_type="text/html")})
    assert isinstance(result.error, ForbiddenError)
    assert "access rules" in (result.fix or "")
    assert "proxy_set_header Host" not in (result.fix or "")


def test_auth_empty_403_is_ollamas_host_check_not_a_login_failure() -> None:
    """Ollama's Host check answers an empty 403: the proxy let the request through."""
    without = _auth({"*": Canned(403)})
    assert without.status is Status.SKIP and "HTTP 403" in without.summary
    with_login = _auth({"*": Canned(403)}, "ollama-user:pw@")
    assert with_login.status is Status.OK
    assert "accepted by the proxy" in with_login.summary
    assert with_login.details["host_check"] is True


def test_auth_ok_and_not_judged() -> None:
    assert _auth({"*": ollama_json({"version": "1"})}).status is Status.OK
    sent = _auth({"*": ollama_json({"version": "1"})}, "u:p@")
    assert sent.status is Status.OK and "accepted" in sent.summary
    other = _auth({"*": Canned(502, NGINX_502, content_type="text/html")})
    assert other.status is Status.SKIP and "502" in other.summary


def test_auth_gateway_error_after_a_login_means_it_was_accepted() -> None:
    """nginx checks auth before proxying: a 502/504 page from it means the login got through."""
    bad_gateway = Canned(502, NGINX_502, content_type="text/html")
    basic = _auth({"*": bad_gateway}, "ollama-user:pw@")
    assert basic.status is Status.OK
    assert basic.summary.startswith(
        "Basic auth as ollama-user: accepted by the proxy (the request got past auth_basic"
    )
    assert basic.details["accepted_by_proxy"] is True
    with CannedServer({"*": bad_gateway}) as server:
        settings = settings_for(server.url, environ={"OLLAMA_API_KEY": "k"})
        with OllamaClient(settings) as client:
            key = check_auth(client, settings)
    assert key.status is Status.OK and "got past its API key check" in key.summary
    # A 502 with a JSON body is no proxy's page: nothing to conclude.
    ollama_502 = Canned(502, '{"error":"x"}', content_type="application/json")
    assert _auth({"*": ollama_502}, "u:p@").status is Status.SKIP


# --------------------------------------------------------------------------- whole runs


def test_run_with_a_streaming_server() -> None:
    stream = Canned(
        200,
        content_type="application/x-ndjson",
        chunks=generate_chunks("tiny:latest", 10, 20),
        interval_s=0.02,
    )
    with CannedServer(ollama_routes(generate=stream)) as server:
        results = run(settings_for(server.url))
    steps = by_name(results)
    assert [r.name for r in results] == list(STEPS)
    assert steps["tls"].status is Status.SKIP  # plain http
    assert steps["residency"].status is Status.SKIP  # this canned server has no /api/ps
    others = [r for r in results if r.name not in ("tls", "residency")]
    assert all(r.status is Status.OK for r in others), [(r.name, r.summary) for r in others]
    assert steps["generate"].details["eval_tps"] == pytest.approx(50)
    assert steps["generate"].details["model"] == "tiny:latest"
    assert steps["streaming"].details["verdict"] == "streaming"
    assert steps["rtt"].details["samples_ms"] and len(steps["rtt"].details["samples_ms"]) == 5
    assert exit_status(results) == 0


def test_run_with_a_buffering_proxy_warns() -> None:
    lump = Canned(
        200,
        content_type="application/x-ndjson",
        chunks=generate_chunks("tiny:latest", 10, 30),  # made over 270 ms ...
        delay_s=0.3,  # ... delivered at once, after the proxy waited for all of it
    )
    with CannedServer(ollama_routes(generate=lump)) as server:
        results = run(settings_for(server.url))
    streaming = by_name(results)["streaming"]
    assert streaming.status is Status.WARN
    assert "one lump" in streaming.summary
    assert "proxy_buffering off" in (streaming.fix or "")
    assert exit_status(results) == 0  # a warning: it works, just not word by word


def test_no_generate() -> None:
    with CannedServer(ollama_routes()) as server:
        results = run(settings_for(server.url), generate=False)
        assert not any(r.path == "/api/generate" for r in server.requests)
    steps = by_name(results)
    assert steps["generate"].status is Status.SKIP
    assert "--no-generate" in steps["generate"].summary
    assert steps["streaming"].status is Status.SKIP
    assert exit_status(results) == 0


def test_no_models_is_a_warning() -> None:
    routes = ollama_routes()
    routes["GET /api/tags"] = ollama_json({"models": []})
    with CannedServer(routes) as server:
        results = run(settings_for(server.url))
    steps = by_name(results)
    assert steps["tags"].status is Status.WARN
    assert "ollama pull" in (steps["tags"].fix or "")
    assert steps["generate"].status is Status.SKIP
    assert exit_status(results) == 0


def test_embedding_only_model_that_cannot_generate_is_skipped() -> None:
    routes = ollama_routes(
        [model_entry("tiny-embed:latest", 10, family="bert"), model_entry("ok:1b", 20)]
    )
    with CannedServer(routes) as server:
        run(settings_for(server.url))
        generated = [r for r in server.requests if r.path == "/api/generate"]
    assert b'"ok:1b"' in generated[0].body


def test_failure_skips_the_rest() -> None:
    with CannedServer({"*": Canned(502, NGINX_502, content_type="text/html")}) as server:
        results = run(settings_for(server.url))
    steps = by_name(results)
    assert steps["auth"].status is Status.SKIP
    assert steps["root"].status is Status.FAIL
    assert isinstance(steps["root"].error, GatewayError)
    after = STEPS[STEPS.index("root") + 1 :]
    assert all(steps[name].status is Status.SKIP for name in after)
    assert exit_status(results) == 2


def test_stall_on_first_request_waits_once() -> None:
    # A server that accepts and never answers: auth hands its timeout to GET /, which must
    # not wait a second time.
    with CannedServer({"*": Canned(200, "x", delay_s=3)}) as server:
        settings = settings_for(server.url, timeout_s=0.4)
        results = run(settings)
        asked = len(server.requests)
    steps = by_name(results)
    assert steps["root"].status is Status.FAIL
    assert "sent nothing" in steps["root"].summary
    assert asked == 1


def test_unknown_model_via_model_option() -> None:
    with run_in_thread(SimConfig(models=(ModelSpec("m:1b", load_ms=1, eval_tps=500),))) as sim:
        results = run(settings_for(sim.url), model="llama9")
    generate = by_name(results)["generate"]
    assert isinstance(generate.error, ModelNotFound)
    assert "ollama pull llama9" in (generate.fix or "")


def test_run_against_the_simulator() -> None:
    spec = ModelSpec("m:1b", load_ms=1, eval_tps=100, reply_tokens=80)
    with run_in_thread(SimConfig(models=(spec,))) as sim:
        results = run(settings_for(sim.url))
    steps = by_name(results)
    assert exit_status(results) == 0
    assert steps["version"].details["version"]
    assert steps["tags"].details["count"] == 1
    assert steps["generate"].details["eval_count"] == GENERATE_NUM_PREDICT
    assert steps["streaming"].status is Status.OK, steps["streaming"].summary
