"""Error texts for what Ollama itself answers (issue 9 item 11), over a raw-socket server:
Ollama's JSON errors are not blamed on a proxy, and a proxy's pages are not blamed on Ollama."""

from __future__ import annotations

import json

import pytest

from ollamakit.client import OllamaClient
from ollamakit.config import Flags, load_settings
from ollamakit.errors import (
    AuthError,
    BadRequest,
    ConfigError,
    ForbiddenError,
    GatewayError,
    OllamaError,
    ServerBusy,
    ServerError,
)
from ollamakit.i18n import set_language
from tests.client.conftest import RawServer, settings_for


def _answer(status: int, body: str, content_type: str = "application/json") -> bytes:
    data = body.encode()
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


def _error(status: int, body: str, content_type: str = "application/json") -> OllamaError:
    with (
        RawServer([_answer(status, body, content_type)]) as server,
        OllamaClient(settings_for(server.url)) as client,
        pytest.raises(OllamaError) as info,
        client.stream_chat("m:1b", [{"role": "user", "content": "hi"}]) as stream,
    ):
        list(stream)
    return info.value


def _texts(error: OllamaError) -> str:
    return f"{error.message}\n{error.hint or ''}"


def test_403_with_ollama_json_shows_ollamas_message_not_the_host_hint() -> None:
    error = _error(403, '{"error":"ollama cloud is disabled: remote model is unavailable"}')
    assert isinstance(error, ForbiddenError)
    text = _texts(error)
    assert "ollama cloud is disabled" in text
    assert "proxy_set_header Host" not in text


def test_empty_403_keeps_the_host_header_hint() -> None:
    error = _error(403, "", "text/plain")
    assert "proxy_set_header Host" in _texts(error)


def test_403_html_page_is_a_proxy_rule() -> None:
    error = _error(403, "<html><title>403 Forbidden</title></html>", "text/html")
    text = _texts(error)
    assert "proxy_set_header Host" not in text and "access rules" in text


def test_502_with_ollama_json_is_ollamas_cloud_proxy() -> None:
    error = _error(502, '{"error":"dial tcp: lookup ollama.com: no such host"}')
    assert isinstance(error, GatewayError)
    text = _texts(error)
    assert "ollama.com" in text and "cloud" in text
    assert "Ollama behind it is not answering" not in text


def test_502_html_is_still_the_reverse_proxy() -> None:
    error = _error(502, "<html><title>502 Bad Gateway</title></html>", "text/html")
    assert "Ollama behind it is not answering" in _texts(error)


def test_429_with_ollama_json_is_ollama_com_rate_limit() -> None:
    error = _error(429, '{"error":"too many requests"}')
    assert isinstance(error, ServerBusy)
    assert "ollama.com" in (error.hint or "") and "OLLAMA_MAX_QUEUE" not in (error.hint or "")


def test_401_with_signin_url_means_ollama_signin_not_a_password() -> None:
    body = json.dumps({"error": "unauthorized", "signin_url": "https://ollama.com/connect?x"})
    error = _error(401, body)
    assert isinstance(error, AuthError)
    text = _texts(error)
    assert "ollama signin" in text
    assert "password" not in error.message.lower()


def test_500_wrong_option_type_is_a_request_error() -> None:
    error = _error(500, '{"error":"option \\"temperature\\" must be of type float32"}')
    assert isinstance(error, BadRequest) and not isinstance(error, ServerError)
    assert error.status == 500
    assert "wrong type" in (error.hint or "") and "memory" not in error.message.lower()


def test_context_overflow_gets_a_num_ctx_hint() -> None:
    body = (
        '{"error":"the prompt is longer than the context length currently available to the '
        'model; shorten the prompt, or increase num_ctx"}'
    )
    error = _error(400, body)
    assert isinstance(error, BadRequest)
    assert "num_ctx" in (error.hint or "")


@pytest.mark.parametrize("lang", ["en", "zh-TW"])
def test_new_texts_render_in_both_languages(lang: str) -> None:
    set_language(lang)
    for status, body in [
        (403, '{"error":"x"}'),
        (502, '{"error":"x"}'),
        (429, '{"error":"x"}'),
        (401, '{"error":"unauthorized","signin_url":"u"}'),
        (500, '{"error":"option \\"seed\\" must be of type int"}'),
    ]:
        error = _error(status, body)
        assert error.message and error.hint


@pytest.mark.parametrize("key", ["sk-abc\ndef", "sk-abc\rdef", "sk-\x1b[31mred"])
def test_api_key_with_control_characters_is_refused_without_echo(key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(Flags(base_url="http://127.0.0.1:1"), environ={"OLLAMA_API_KEY": key})
    shown = f"{info.value.message}\n{info.value.hint}"
    assert "OLLAMA_API_KEY" in shown
    assert "abc" not in shown and "red" not in shown and "sk-abc" not in shown
