"""The client over real loopback HTTP: one test per failure class of the error tree.

Each test provokes the failure the way it happens in the field (a closed port, an untrusted
certificate, an nginx error page, a stream cut short ...) and checks the error class and the
words of its message and fix, since those words are what a user acts on. The proxy-ish
answers come from ``proxyish.CannedServer``; the stream faults from the simulator.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from ollamakit.client import OllamaClient, translate
from ollamakit.client.judge import Timeouts
from ollamakit.config import Settings, parse_base_url
from ollamakit.errors import (
    AuthError,
    ConfigError,
    ConnectionRefused,
    ConnectTimeout,
    DNSFailure,
    ForbiddenError,
    GatewayError,
    MethodNotAllowed,
    ModelNotFound,
    NotFoundError,
    NotOllama,
    OllamaError,
    ReadTimeout,
    RedirectError,
    ServerBusy,
    StreamCut,
    StreamError,
    TLSMismatch,
    TLSVerifyFailed,
)
from ollamakit.i18n import set_language
from ollamakit.sim import Fault, FaultKind, ModelSpec, SimConfig, run_in_thread
from tests.proxyish import (
    BUSY,
    NGINX_401,
    NGINX_405,
    NGINX_502,
    NGINX_504,
    PORTAL,
    Blackhole,
    Canned,
    CannedServer,
    closed_port,
    generate_chunks,
    ollama_json,
    server_tls_context,
)
from tests.support import settings_for

CANARY = "s3cr3t-canary-pw"


def raised(settings: Settings, call: str = "version", **kwargs: Any) -> OllamaError:
    """Run one client call and return the OllamaError it raised."""
    read_timeout_s = kwargs.pop("read_timeout_s", 5)
    with (
        OllamaClient(settings, read_timeout_s=read_timeout_s) as client,
        pytest.raises(OllamaError) as info,
    ):
        if call == "generate":
            with client.stream_generate(kwargs.pop("model", "m:1b"), "hi") as stream:
                list(stream)
        else:
            getattr(client, call)(**kwargs)
    return info.value


def assert_words(error: OllamaError, *message: str, hint: tuple[str, ...] = ()) -> None:
    for word in message:
        assert word in error.message, error.message
    for word in hint:
        assert error.hint is not None and word in error.hint, error.hint
    assert CANARY not in error.message
    assert CANARY not in (error.hint or "")


# --------------------------------------------------------------------------- connecting


def test_refused() -> None:
    port = closed_port()
    error = raised(settings_for(f"http://127.0.0.1:{port}"))
    assert isinstance(error, ConnectionRefused)
    assert_words(
        error,
        "refused",
        f"127.0.0.1:{port}",
        hint=("Ollama running on this machine", "systemctl", "uv run ollamakit sim"),
    )
    # nothing about remote access on loopback: no firewall, no OLLAMA_HOST=0.0.0.0
    assert "/tcp" not in (error.hint or "") and "0.0.0.0" not in (error.hint or "")


def test_dns_failure() -> None:
    error = raised(settings_for("http://no-such-host.invalid:11434"))
    assert isinstance(error, DNSFailure)
    assert_words(error, "no-such-host.invalid", "resolution", hint=("IP address",))


def test_connect_timeout_real() -> None:
    with Blackhole() as hole:
        settings = dataclasses.replace(
            settings_for(f"http://127.0.0.1:{hole.port}"), connect_timeout_s=0.3
        )
        error = raised(settings)
    assert isinstance(error, ConnectTimeout)
    assert_words(error, "timed out", "0.3", hint=("firewall", "ufw allow", "firewall-cmd"))


def test_connect_timeout_translation() -> None:
    server = parse_base_url("http://10.1.2.3:11434")
    error = translate(
        httpx.ConnectTimeout("timed out"), server, server.url("/"), Timeouts(5.0, 5.0)
    )
    assert isinstance(error, ConnectTimeout)
    assert "10.1.2.3:11434" in str(error)
    assert "11434/tcp" in (error.hint or "")


# --------------------------------------------------------------------------- TLS


# ``ca`` (one per session) and ``ca_file`` come from tests/conftest.py.


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[CannedServer]:
    routes = {"/api/version": ollama_json({"version": "0.5.1"})}
    with CannedServer(routes, tls=server_tls_context(ca)) as server:
        yield server


def test_tls_untrusted_suggests_ca_bundle(tls_server: CannedServer) -> None:
    error = raised(settings_for(tls_server.url))
    assert isinstance(error, TLSVerifyFailed)
    assert_words(
        error,
        "The TLS certificate of 127.0.0.1 is not trusted: it was issued by O=trustme",
        "which is not a trusted CA (trusted here: public CAs) "
        "[unable to get local issuer certificate]",
        hint=(
            "--ca-bundle",
            "OLLAMA_CA_BUNDLE",
            # docs/remote.md's command; an IP address is no name for it, so the docs' example.
            "Let's Encrypt (docs/remote.md, 4.3):\n"
            "    sudo certbot certonly --nginx -d ollama.example.com",
        ),
    )
    set_language("zh-TW")
    error = raised(settings_for(tls_server.url))
    assert "不受信任：簽發者 O=trustme" in error.message
    assert "不是受信任的 CA（此處信任：公開 CA）［unable to get local issuer certificate］" in (
        error.message
    )


def test_tls_self_signed_expired_and_wrong_name_in_words(ca: trustme.CA, ca_file: Path) -> None:
    from datetime import UTC, datetime

    self_signed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.configure_trust(self_signed)  # harmless; the server shows the CA's own certificate:
    with tempfile.TemporaryDirectory() as folder:
        cert, key = Path(folder, "c.pem"), Path(folder, "k.pem")
        ca.cert_pem.write_to_path(str(cert))
        ca.private_key_pem.write_to_path(str(key))
        self_signed.load_cert_chain(str(cert), str(key))
    with CannedServer({}, tls=self_signed) as server:
        error = raised(settings_for(server.url))
    assert "it is self-signed (O=trustme" in error.message
    assert "[self-signed certificate]" in error.message or "[self signed certificate]" in (
        error.message
    )

    expired = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(
        "127.0.0.1",
        not_before=datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime(2021, 1, 1, tzinfo=UTC),
    ).configure_cert(expired)
    with CannedServer({}, tls=expired) as server:
        error = raised(settings_for(server.url, ca_bundle=str(ca_file)))
    assert "it expired on 2021-01-01 [certificate has expired]" in error.message
    assert "certbot renew" in (error.hint or "") and "--ca-bundle" not in (error.hint or "")

    with CannedServer({}, tls=server_tls_context(ca, "other.example", "b.example")) as server:
        error = raised(settings_for(server.url, ca_bundle=str(ca_file)))
    assert "it was issued for other.example, b.example, not for 127.0.0.1" in error.message
    assert "a certificate that includes 127.0.0.1" in (error.hint or "")


def test_tls_trusted_with_ca_bundle(tls_server: CannedServer, ca_file: Path) -> None:
    settings = settings_for(tls_server.url, ca_bundle=str(ca_file))
    with OllamaClient(settings) as client:
        assert client.version() == "0.5.1"


def test_tls_ca_bundle_from_environment(tls_server: CannedServer, ca_file: Path) -> None:
    settings = settings_for(tls_server.url, environ={"OLLAMA_CA_BUNDLE": str(ca_file)})
    with OllamaClient(settings) as client:
        assert client.version() == "0.5.1"


def test_tls_insecure_skips_verification(tls_server: CannedServer) -> None:
    with OllamaClient(settings_for(tls_server.url, insecure=True)) as client:
        assert client.version() == "0.5.1"


def test_tls_wrong_name(ca: trustme.CA, ca_file: Path) -> None:
    with CannedServer({}, tls=server_tls_context(ca, "other.example")) as server:
        error = raised(settings_for(server.url, ca_bundle=str(ca_file)))
    assert isinstance(error, TLSVerifyFailed)
    assert "127.0.0.1" in error.message


def test_https_to_plain_http_port() -> None:
    with CannedServer({}) as server:
        error = raised(settings_for(f"https://127.0.0.1:{server.port}"))
    assert isinstance(error, TLSMismatch)
    assert_words(error, "TLS", hint=(f"http://127.0.0.1:{server.port}",))


def test_http_to_tls_port(tls_server: CannedServer) -> None:
    error = raised(settings_for(f"http://127.0.0.1:{tls_server.port}"))
    assert isinstance(error, TLSMismatch)
    assert_words(error, hint=(f"https://127.0.0.1:{tls_server.port}",))


def test_nginx_plain_http_to_https_port() -> None:
    page = "<html><head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    with CannedServer({"*": Canned(400, page, content_type="text/html")}) as server:
        error = raised(settings_for(server.url))
    assert isinstance(error, TLSMismatch)
    assert_words(error, hint=(f"https://127.0.0.1:{server.port}",))


# --------------------------------------------------------------------------- HTTP statuses


def _unauthorized() -> Canned:
    return Canned(
        401,
        NGINX_401,
        content_type="text/html",
        headers={"WWW-Authenticate": 'Basic realm="Ollama Server"'},
    )


def test_401_without_credentials() -> None:
    with CannedServer({"*": _unauthorized()}) as server:
        error = raised(settings_for(server.url))
        assert "Authorization" not in server.requests[0].headers
    assert isinstance(error, AuthError)
    assert_words(
        error,
        "401",
        'realm "Ollama Server"',
        hint=("requires a login", f"shell history):\n    curl -u USER {server.url}/api/tags"),
    )


def test_401_with_wrong_credentials() -> None:
    with CannedServer({"*": _unauthorized()}) as server:
        error = raised(settings_for(f"http://ollama-user:{CANARY}@127.0.0.1:{server.port}"))
        sent = server.requests[0]
    assert isinstance(error, AuthError)
    assert_words(
        error,
        "401",
        hint=(
            "The password for ollama-user was rejected (Basic auth from --base-url)",
            "htpasswd",
            # The real user name, no password: curl asks for it.
            "Test by hand (curl asks for the password",
            f":\n    curl -u ollama-user {server.url}/api/tags",
        ),
    )
    # The password travels as a Basic header, never in the request line.
    expected = base64.b64encode(f"ollama-user:{CANARY}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert CANARY not in sent.path


def test_401_with_an_api_key_names_the_key() -> None:
    with CannedServer({"*": _unauthorized()}) as server:
        error = raised(settings_for(server.url, environ={"OLLAMA_API_KEY": CANARY}))
    assert isinstance(error, AuthError)
    assert_words(
        error,
        hint=(
            "The API key (OLLAMA_API_KEY) was rejected",
            'curl -H "Authorization: Bearer $OLLAMA_API_KEY" ',
        ),
    )
    assert "password" not in (error.hint or "")
    Path(".env").write_text(f"OLLAMA_API_KEY={CANARY}\n")
    with CannedServer({"*": _unauthorized()}) as server:
        error = raised(settings_for(server.url))
    assert_words(error, hint=("The API key (OLLAMA_API_KEY in .env) was rejected",))


def test_401_curl_line_uses_the_same_trust(ca: trustme.CA, ca_file: Path) -> None:
    """With a private CA the curl line needs --cacert (or -k under --insecure) to work."""
    tls = server_tls_context(ca)
    with CannedServer({"*": _unauthorized()}, tls=tls) as server:
        url = f"https://ollama-user:{CANARY}@127.0.0.1:{server.port}"
        trusted = raised(settings_for(url, ca_bundle=str(ca_file)))
        insecure = raised(settings_for(url, insecure=True))
    origin = f"https://127.0.0.1:{server.port}"
    assert_words(trusted, hint=(f"curl --cacert {ca_file} -u ollama-user {origin}/api/tags",))
    assert_words(insecure, hint=(f"curl -k -u ollama-user {origin}/api/tags",))


def test_401_in_chinese() -> None:
    set_language("zh-TW")
    with CannedServer({"*": _unauthorized()}) as server:
        error = raised(settings_for(f"http://ollama-user:{CANARY}@127.0.0.1:{server.port}"))
    assert error.message == (
        f'身分驗證失敗（HTTP 401）：{server.url}/api/version（realm "Ollama Server"）。'
    )
    assert_words(
        error,
        hint=(
            "ollama-user 的密碼被拒絕（Basic 認證，來自 --base-url）：",
            "手動測試（curl 會詢問密碼",
            f"：\n    curl -u ollama-user {server.url}/api/tags",
        ),
    )


def test_bearer_api_key_is_sent() -> None:
    with CannedServer({"*": ollama_json({"version": "1"})}) as server:
        settings = settings_for(server.url, environ={"OLLAMA_API_KEY": "sk-test-1"})
        with OllamaClient(settings) as client:
            client.version()
        headers = server.requests[0].headers
    assert headers["Authorization"] == "Bearer sk-test-1"
    assert "Origin" not in headers  # Ollama's CORS check would 403 a foreign Origin
    assert headers["User-Agent"].startswith("ollamakit/")


def test_password_and_api_key_together_is_a_config_error() -> None:
    settings = settings_for("http://u:p@127.0.0.1:1", environ={"OLLAMA_API_KEY": "k"})
    with pytest.raises(ConfigError, match="OLLAMA_API_KEY"):
        OllamaClient(settings)


def test_403_empty_body_explains_host_header() -> None:
    with CannedServer({"*": Canned(403, b"")}) as server:
        error = raised(settings_for(server.url))
    assert isinstance(error, ForbiddenError)
    assert_words(error, "403", hint=("Host", "proxy_set_header Host localhost:11434", "0.0.0.0"))


def test_404_model_suggests_pull() -> None:
    body = '{"error":"model \'llama9\' not found"}'
    route = Canned(404, body, content_type="application/json")
    with CannedServer({"POST /api/generate": route}) as server:
        error = raised(settings_for(server.url), "generate", model="llama9")
    assert isinstance(error, ModelNotFound)
    assert_words(error, "llama9", hint=("ollama pull llama9",))


def test_404_model_legacy_text() -> None:
    body = '{"error":"model \\"llama9\\" not found, try pulling it first"}'
    route = Canned(404, body, content_type="application/json")
    with CannedServer({"POST /api/generate": route}) as server:
        error = raised(settings_for(server.url), "generate", model="llama9")
    assert isinstance(error, ModelNotFound)


def test_404_path_is_not_a_missing_model() -> None:
    with CannedServer({}) as server:  # every path: "404 page not found"
        error = raised(settings_for(server.url + "/ollama"), "generate", model="x")
    assert type(error) is NotFoundError
    assert_words(error, "/ollama/api/generate", hint=("prefix",))


def test_405_explains_post_turned_get() -> None:
    route = Canned(405, NGINX_405, content_type="text/html")
    with CannedServer({"POST /api/generate": route}) as server:
        error = raised(settings_for(server.url), "generate")
    assert isinstance(error, MethodNotAllowed)
    assert_words(error, "405", hint=("POST", "GET", "https://"))


def test_502_says_the_proxy_cannot_reach_ollama() -> None:
    with CannedServer({"*": Canned(502, NGINX_502, content_type="text/html")}) as server:
        error = raised(settings_for(server.url))
    assert isinstance(error, GatewayError)
    assert_words(
        error,
        "HTTP 502",
        "is up, but Ollama behind it is not answering",
        hint=(
            "cannot reach Ollama",
            "the address in nginx's proxy_pass",
            "(127.0.0.1:11434 in the shipped configs)",
        ),
    )
    assert "proxy_read_timeout" not in (error.hint or "")


def test_504_says_raise_proxy_read_timeout() -> None:
    with CannedServer({"*": Canned(504, NGINX_504, content_type="text/html")}) as server:
        error = raised(settings_for(server.url))
    assert isinstance(error, GatewayError)
    assert_words(
        error,
        "HTTP 504",
        "Ollama behind it did not answer in time",
        hint=("proxy_read_timeout 600s", "nginx -t"),
    )
    assert "proxy_pass" not in (error.hint or "") and "11434" not in (error.hint or "")


def test_503_busy() -> None:
    route = Canned(503, BUSY, content_type="application/json")
    with CannedServer({"POST /api/generate": route}) as server:
        error = raised(settings_for(server.url), "generate")
    assert isinstance(error, ServerBusy)
    assert_words(error, "busy", "503", hint=("OLLAMA_MAX_QUEUE", "OLLAMA_NUM_PARALLEL"))


def test_html_body_quotes_its_title() -> None:
    with CannedServer({"*": Canned(200, PORTAL, content_type="text/html")}) as server:
        error = raised(settings_for(server.url), "list_models")
    assert isinstance(error, NotOllama)
    assert_words(error, "Guest Wi-Fi - Sign in", "text/html", hint=("proxy",))


def test_html_body_on_a_stream() -> None:
    with CannedServer({"*": Canned(200, PORTAL, content_type="text/html")}) as server:
        error = raised(settings_for(server.url), "generate")
    assert isinstance(error, NotOllama)
    assert "Guest Wi-Fi - Sign in" in error.message


def test_heartbeat_from_something_else() -> None:
    with CannedServer({"GET /": Canned(200, "It works!")}) as server:
        error = raised(settings_for(server.url), "heartbeat")
    assert isinstance(error, NotOllama)
    assert '"It works!"' in error.message


def test_redirect_to_https_names_the_url_to_use() -> None:
    def to_https(request: Any) -> Canned:
        return Canned(
            301, headers={"Location": f"https://127.0.0.1:8443{request.path}"}, body=b"moved"
        )

    with CannedServer({"*": to_https}) as server:
        url = f"http://ollama-user:{CANARY}@127.0.0.1:{server.port}"
        error = raised(settings_for(url), "generate")
    assert isinstance(error, RedirectError)
    assert_words(
        error,
        "301",
        "https://127.0.0.1:8443/api/generate",
        hint=(
            "OLLAMA_BASE_URL=https://ollama-user:***@127.0.0.1:8443   "
            "(put your password where *** is)",
            "POST",
        ),
    )
    with CannedServer({"*": to_https}) as server:
        error = raised(settings_for(server.url), "generate")
    assert "OLLAMA_BASE_URL=https://127.0.0.1:8443\n" in (error.hint or "")
    assert "***" not in (error.hint or "")


# --------------------------------------------------------------------------- streams


def _sim_config(*faults: Fault) -> SimConfig:
    model = ModelSpec("m:1b", eval_tps=500, reply_tokens=12, load_ms=1, faults=faults)
    return SimConfig(models=(model,), stall_s=5)


def test_stream_happy_path_has_arrival_times() -> None:
    with (
        run_in_thread(_sim_config()) as sim,
        OllamaClient(settings_for(sim.url)) as client,
        client.stream_generate("m:1b", "hi") as stream,
    ):
        chunks = list(stream)
    assert chunks[-1].done
    arrivals = [c.arrival_ns for c in chunks]
    assert arrivals == sorted(arrivals)
    assert stream.sent_ns <= stream.headers_ns <= arrivals[0]


def test_mid_stream_error_line() -> None:
    with run_in_thread(_sim_config(Fault(FaultKind.ERROR_AFTER, 3))) as sim:
        error = raised(settings_for(sim.url), "generate")
    assert isinstance(error, StreamError)
    assert_words(error, "middle of the reply", "an error was encountered", hint=("log",))


def test_cut_stream() -> None:
    with run_in_thread(_sim_config(Fault(FaultKind.CUT_AFTER, 3))) as sim:
        error = raised(settings_for(sim.url), "generate")
    assert isinstance(error, StreamCut)
    assert_words(error, "ended before it was complete", hint=("proxy_read_timeout",))


def test_stream_that_ends_cleanly_without_done_is_not_a_cut() -> None:
    # Ollama's token-repeat guard: the body ends properly, with no done line (issue 9 item 10).
    chunks = generate_chunks("m:1b", 3, 1)[:-1]
    route = Canned(200, content_type="application/x-ndjson", chunks=chunks)
    with (
        CannedServer({"POST /api/generate": route}) as server,
        OllamaClient(settings_for(server.url)) as client,
        client.stream_generate("m:1b", "hi") as stream,
    ):
        got = list(stream)
    assert len(got) == 3 and not any(c.done for c in got)
    assert stream.end == "clean_eof"


def test_stream_cut_without_its_last_frame_is_a_cut() -> None:
    chunks = generate_chunks("m:1b", 3, 1)[:-1]
    route = Canned(200, content_type="application/x-ndjson", chunks=chunks, finish=False)
    with CannedServer({"POST /api/generate": route}) as server:
        error = raised(settings_for(server.url), "generate")
    assert isinstance(error, StreamCut)


def test_stall_is_a_read_timeout() -> None:
    with run_in_thread(_sim_config(Fault(FaultKind.STALL_AFTER, 2))) as sim:
        error = raised(settings_for(sim.url), "generate", read_timeout_s=0.3)
    assert isinstance(error, ReadTimeout)
    assert_words(error, "sent nothing for 0.3 s", hint=("--timeout", "BENCHMARK_TIMEOUT_SECONDS"))


def test_busy_from_the_simulator() -> None:
    with run_in_thread(_sim_config(Fault(FaultKind.BUSY))) as sim:
        error = raised(settings_for(sim.url), "generate")
    assert isinstance(error, ServerBusy)
    assert "maximum pending requests" in error.message


def test_unknown_model_from_the_simulator() -> None:
    with run_in_thread(_sim_config()) as sim:
        error = raised(settings_for(sim.url), "generate", model="llama9")
    assert isinstance(error, ModelNotFound)
    assert "ollama pull llama9" in (error.hint or "")


# --------------------------------------------------------------------------- request log


def test_every_request_is_logged_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    """The --debug request log: method, URL, status, time; streams also chunks and total."""
    url = "http://ollama-user:{}@127.0.0.1:{}"
    with run_in_thread(_sim_config()) as sim, caplog.at_level(logging.DEBUG, "ollamakit.http"):
        settings = settings_for(url.format(CANARY, sim.port))
        with OllamaClient(settings) as client:
            client.version()
            client.probe("GET", "/")
            with client.stream_generate("m:1b", "hi") as stream:
                chunks = list(stream)
        assert isinstance(raised(settings, "generate", model="nope:1b"), ModelNotFound)
    lines = [r.getMessage() for r in caplog.records if r.name == "ollamakit.http"]
    base = f"http://127.0.0.1:{sim.port}"
    assert any(re.fullmatch(rf"GET {base}/api/version -> 200 \([\d.]+ ms\)", x) for x in lines)
    assert any(re.fullmatch(rf"GET {base}/ -> 200 \([\d.]+ ms\)", x) for x in lines)
    assert any(
        re.fullmatch(rf"POST {base}/api/generate -> 200, headers after [\d.]+ ms", x) for x in lines
    )
    assert f"stream complete, {len(chunks)} chunks in" in "\n".join(lines)
    assert any(x.startswith(f"POST {base}/api/generate -> 404") for x in lines)
    text = "\n".join(lines)
    assert CANARY not in text and "Authorization" not in text and "Basic " not in text


async def _async_requests(settings: Settings) -> None:
    from ollamakit.client import AsyncOllamaClient

    async with AsyncOllamaClient(settings) as client:
        await client.list_models()
        async with client.stream_chat("m:1b", [{"role": "user", "content": "hi"}]) as stream:
            async for chunk in stream:
                if not chunk.done:
                    break  # hang up early


def test_async_requests_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    # 50 ms a token: the client hangs up while the reply is still coming, however late it
    # gets to read on a busy machine (at 2 ms a token the whole reply can be in the first read).
    slow = SimConfig(models=(ModelSpec("m:1b", eval_tps=20, reply_tokens=12, load_ms=1),))
    with run_in_thread(slow) as sim, caplog.at_level(logging.DEBUG, "ollamakit.http"):
        asyncio.run(_async_requests(settings_for(sim.url)))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "ollamakit.http")
    assert f"GET {sim.url}/api/tags -> 200 (" in text
    assert f"POST {sim.url}/api/chat -> 200, headers after" in text
    # Chunks decoded, not handed out: how many came in the first read depends on timing.
    assert re.search(
        rf"POST {re.escape(sim.url)}/api/chat: stream closed early, \d+ chunks in", text
    )
