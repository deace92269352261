"""The shipped nginx configs, run for real with the simulator behind them.

One simulator and one nginx per variant for the whole module:

========== ============================================================================
tls        ``ollama-tls-auth.conf`` as shipped (HTTPS + Basic auth, http -> https 301)
plain      ``ollama.conf`` as shipped
apikey     ``ollama-apikey.conf`` as shipped (Bearer key)
down       ``ollama-tls-auth.conf`` whose upstream has nothing listening (502)
host       ``ollama-tls-auth.conf`` forwarding a public Host name, as the seed's
           ``proxy_set_header Host $host`` does for a client that uses the DNS name
seed       ``ollama.conf`` with the seed's literal ``proxy_set_header Host $host``
buffering  ``ollama-tls-auth.conf`` with ``proxy_buffering on`` and buffers that hold a whole
           short reply: the client gets it in one lump
========== ============================================================================

These tests use :class:`ollamakit.client.OllamaClient`, which every command is built on; the
commands themselves run through the same proxies in ``test_commands_through_nginx.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from ollamakit.client import OllamaClient
from ollamakit.errors import (
    AuthError,
    ForbiddenError,
    GatewayError,
    HTTPError,
    RedirectError,
    TLSVerifyFailed,
)
from ollamakit.sim import ModelSpec, SimConfig
from tests.support import settings_for  # (url, ca_pem, OLLAMA_API_KEY=...) as before

from .conftest import (
    API_KEY,
    MODEL,
    ODD_PASSWORD,
    ODD_USER,
    PASSWORD,
    PKI,
    REPLY_TOKENS,
    TOKEN_INTERVAL_S,
    USER,
    Nginx,
    Simulator,
    secret_forms,
    sim_config,
)

pytestmark = pytest.mark.nginx


def assert_clean(text: str) -> None:
    for secret in secret_forms():
        assert secret not in text, f"secret {secret!r} leaked into: {text}"


def message_of(exc: BaseException) -> str:
    hint = getattr(exc, "hint", None) or ""
    return f"{exc}\n{hint}"


# --------------------------------------------------------------------------- it works


def test_everything_through_https_and_basic_auth(tls: Nginx, pki: PKI) -> None:
    with OllamaClient(settings_for(tls.https_url(), pki.ca_pem)) as client:
        assert client.heartbeat() == "Ollama is running"
        assert client.version()
        assert [m["name"] for m in client.list_models()] == [MODEL]
        with client.stream_chat(MODEL, [{"role": "user", "content": "hi"}]) as stream:
            chunks = list(stream)
    assert chunks[-1].done
    assert "".join(c.content for c in chunks)


def test_password_with_special_characters_percent_encoded(tls: Nginx, pki: PKI) -> None:
    url = tls.https_url(ODD_USER, ODD_PASSWORD)
    assert "%40" in url and "%3A" in url and "%2F" in url and "%23" in url
    with OllamaClient(settings_for(url, pki.ca_pem)) as client:
        assert client.heartbeat() == "Ollama is running"


def test_plain_proxy(plain: Nginx) -> None:
    with OllamaClient(settings_for(plain.http_origin)) as client:
        assert client.heartbeat() == "Ollama is running"
        assert [m["name"] for m in client.list_models()] == [MODEL]


def test_api_key_proxy(apikey: Nginx, pki: PKI) -> None:
    with OllamaClient(settings_for(apikey.https_origin, pki.ca_pem, OLLAMA_API_KEY=API_KEY)) as c:
        assert c.heartbeat() == "Ollama is running"
        assert [m["name"] for m in c.list_models()] == [MODEL]


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_api_key_proxy_rejects_missing_or_wrong_key(
    apikey: Nginx, pki: PKI, key: str | None
) -> None:
    env = {"OLLAMA_API_KEY": key} if key else {}
    with (
        OllamaClient(settings_for(apikey.https_origin, pki.ca_pem, **env)) as client,
        pytest.raises(AuthError) as info,
    ):
        client.list_models()
    assert "Authentication failed (HTTP 401)" in str(info.value)
    assert 'realm "Ollama"' in str(info.value)


def test_large_request_bodies_pass(tls: Nginx, pki: PKI) -> None:
    """A vision request carries a base64 image: several MB, over nginx's 1 MB default."""
    with OllamaClient(settings_for(tls.https_url(), pki.ca_pem)) as client:
        probe = client.probe("POST", "/api/show", json={"model": MODEL, "pad": "A" * 3_000_000})
    assert probe.status == 200, probe.body[:200]


# --------------------------------------------------------------------------- streaming


def _arrivals(server: Nginx, pki: PKI) -> tuple[list[int], int]:
    with (
        OllamaClient(settings_for(server.https_url(), pki.ca_pem)) as client,
        client.stream_chat(MODEL, [{"role": "user", "content": "count"}]) as stream,
    ):
        chunks = list(stream)
    assert chunks[-1].done
    tokens = [c.arrival_ns for c in chunks if c.content]
    return tokens, len(chunks)


def test_stream_arrives_incrementally_through_the_proxy(tls: Nginx, pki: PKI) -> None:
    arrivals, _ = _arrivals(tls, pki)
    assert len(arrivals) >= REPLY_TOKENS - 1
    spread_s = (arrivals[-1] - arrivals[0]) / 1e9
    expected_s = (len(arrivals) - 1) * TOKEN_INTERVAL_S
    # Tokens arrive about one interval apart, as the simulator sends them.
    assert spread_s >= 0.6 * expected_s, (spread_s, expected_s)
    # Most in reads of their own (a busy machine may merge a few).
    distinct = len(set(arrivals))
    assert distinct >= 0.5 * len(arrivals), f"{distinct} reads for {len(arrivals)} tokens"


def test_buffering_variant_delivers_in_one_lump(buffering: Nginx, pki: PKI) -> None:
    """The broken variant the doctor check needs really is broken (the harness can fail).

    The tokens may still come in several reads (nginx writes the buffered upstream chunks out
    one TLS record at a time), but all within a small part of the time they took to make.
    """
    arrivals, _ = _arrivals(buffering, pki)
    spread_s = (arrivals[-1] - arrivals[0]) / 1e9
    expected_s = (len(arrivals) - 1) * TOKEN_INTERVAL_S
    assert spread_s < 0.3 * expected_s, (spread_s, expected_s)


# --------------------------------------------------------------------------- failures


def test_wrong_password_is_401(tls: Nginx, pki: PKI) -> None:
    with (
        OllamaClient(settings_for(tls.https_url(password="wrong-Pw-1"), pki.ca_pem)) as client,
        pytest.raises(AuthError) as info,
    ):
        client.list_models()
    text = message_of(info.value)
    assert "Authentication failed (HTTP 401)" in text
    assert "rejected" in text
    assert "wrong-Pw-1" not in text
    assert info.value.exit_status == 2


def test_untrusted_certificate_names_ca_bundle(tls: Nginx) -> None:
    with (
        OllamaClient(settings_for(tls.https_url())) as client,
        pytest.raises(TLSVerifyFailed) as info,
    ):
        client.heartbeat()
    text = message_of(info.value)
    assert "not trusted" in text
    assert "--ca-bundle" in text
    assert_clean(text)


def test_ollama_down_behind_the_proxy_is_502(down: Nginx, pki: PKI) -> None:
    with (
        OllamaClient(settings_for(down.https_url(), pki.ca_pem)) as client,
        pytest.raises(GatewayError) as info,
    ):
        client.heartbeat()
    text = message_of(info.value)
    assert "is up, but Ollama behind it is not" in text
    assert "HTTP 502" in text
    assert_clean(text)


def test_http_port_redirects_to_https(tls: Nginx) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{tls.http_port}"
    with OllamaClient(settings_for(url)) as client, pytest.raises(RedirectError) as info:
        client.list_models()
    text = message_of(info.value)
    assert info.value.status == 301
    assert f"OLLAMA_BASE_URL=https://ollama-user:***@127.0.0.1:{tls.https_port}" in text
    assert_clean(text)


def test_public_host_header_is_403_naming_proxy_set_header(host: Nginx, pki: PKI) -> None:
    with (
        OllamaClient(settings_for(host.https_url(), pki.ca_pem)) as client,
        pytest.raises(ForbiddenError) as info,
    ):
        client.heartbeat()
    text = message_of(info.value)
    assert "HTTP 403" in text
    assert "proxy_set_header Host localhost:11434" in text


def test_seed_config_with_host_dollar_host_is_403_for_a_dns_name(seed: Nginx, plain: Nginx) -> None:
    """The seed's literal config: a client using the DNS name gets 403 on every request."""
    public = {"Host": "ollama.example.com"}
    broken = httpx.get(seed.http_origin + "/", headers=public, trust_env=False)
    assert broken.status_code == 403
    assert broken.content == b""
    fixed = httpx.get(plain.http_origin + "/", headers=public, trust_env=False)
    assert fixed.status_code == 200
    assert fixed.text == "Ollama is running"


def test_what_reaches_ollama(tls: Nginx, pki: PKI, sim: Simulator) -> None:
    """Ollama sees Host localhost:11434 and no credentials: nginx checked them and kept them."""
    with OllamaClient(settings_for(tls.https_url(), pki.ca_pem)) as client:
        client.version()
    record = next(r for r in reversed(sim.requests()) if r["path"] == "/api/version")
    assert record["host"] == "localhost:11434"
    assert record["authorization"] is False
    assert record["status"] == 200


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[Simulator]:
    """A model that takes 3 s to load (a big model's cold start, shortened)."""
    config = SimConfig(models=(ModelSpec("big:70b", load_ms=3000, eval_tps=50, reply_tokens=4),))
    simulator = Simulator(config).start()
    yield simulator
    simulator.stop()


def test_short_proxy_read_timeout_is_504(
    start_nginx: Callable[..., Nginx], slow_sim: Simulator, pki: PKI
) -> None:
    """Why the configs set proxy_read_timeout 600s: a slow first byte becomes a 504."""
    server = start_nginx(
        "ollama-tls-auth.conf",
        slow_sim.address,
        {"proxy_read_timeout 600s;": "proxy_read_timeout 1s;"},
    )
    with (
        OllamaClient(settings_for(server.https_url(), pki.ca_pem)) as client,
        pytest.raises(GatewayError) as info,
        client.stream_chat("big:70b", [{"role": "user", "content": "hi"}]) as stream,
    ):
        list(stream)
    text = message_of(info.value)
    assert "HTTP 504" in text
    assert "proxy_read_timeout" in text


def test_request_too_large_names_client_max_body_size(
    start_nginx: Callable[..., Nginx], sim: Simulator
) -> None:
    """nginx's default body limit (1 MB) and a vision request: 413 from the proxy."""
    server = start_nginx(
        "ollama.conf", sim.address, {"client_max_body_size 100m;": "client_max_body_size 1m;"}
    )
    image = "A" * 2_000_000  # base64, as Ollama takes images
    with (
        OllamaClient(settings_for(server.http_origin)) as client,
        pytest.raises(HTTPError) as info,
    ):
        client.chat(MODEL, [{"role": "user", "content": "what is this?", "images": [image]}])
    assert info.value.status == 413
    assert "client_max_body_size" in message_of(info.value)


def test_ollama_stopping_behind_a_running_proxy_is_502(
    start_nginx: Callable[..., Nginx], pki: PKI
) -> None:
    """Ollama answered, then stopped: nginx's kept-alive upstream connection is dead too."""
    backend = Simulator(sim_config()).start()
    try:
        server = start_nginx("ollama-tls-auth.conf", backend.address)
        with OllamaClient(settings_for(server.https_url(), pki.ca_pem)) as client:
            assert client.heartbeat() == "Ollama is running"
            backend.stop()
            with pytest.raises(GatewayError) as info:
                client.list_models()
    finally:
        backend.stop()
    assert "is up, but Ollama behind it is not answering (HTTP 502)" in str(info.value)
