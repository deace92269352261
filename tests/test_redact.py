"""Credential masking in one place: every shape of secret, idempotent, prose left alone."""

from __future__ import annotations

import pytest

from ollamakit import redact
from ollamakit.config import parse_base_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "https://ollama-user:s3cret@gpu.example.com/x",
            "https://ollama-user:***@gpu.example.com/x",
        ),
        ("GET http://u:pa@ss@10.0.0.5:11434/api/tags", "GET http://u:***@10.0.0.5:11434/api/tags"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("bearer sk-proj-4f9a2c7e41d84b0c", "bearer ***"),
        (
            "basic authentication, llama3.2:3b at 12:30",
            "basic authentication, llama3.2:3b at 12:30",
        ),
    ],
)
def test_free_text(text: str, expected: str) -> None:
    assert redact.redact(text) == expected
    assert redact.redact(expected) == expected  # idempotent


def test_urls_and_headers() -> None:
    assert redact.url_password("https://u:pa/ss#x@host") == "https://u:***@host"
    assert redact.url_userinfo("http://alice:pw@proxy:3128") == "http://***@proxy:3128"
    assert redact.url_userinfo("http://***@proxy:3128") == "http://***@proxy:3128"
    shown = redact.headers({"authorization": "Bearer x", "Proxy-Authorization": "Basic y"})
    assert set(shown.values()) == {redact.MASK}
    # the server URL is shown through the same rule
    url = parse_base_url("https://me:p%40ss@h.example:8443/ollama")
    assert url.redacted() == "https://me:***@h.example:8443/ollama"
    assert "p%40ss" not in str(url) and "p@ss" not in str(url)


def test_scrub_reaches_every_string() -> None:
    doc = {"server": {"base_url": "http://a:b@h"}, "errors": ["Bearer abcdefghijklmnop1"]}
    assert redact.scrub(doc) == {"server": {"base_url": "http://a:***@h"}, "errors": ["Bearer ***"]}
