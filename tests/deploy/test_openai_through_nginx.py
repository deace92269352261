"""The OpenAI-compatible path (``--api openai``) through the shipped HTTPS + Basic auth proxy.

The same ``ollama-tls-auth.conf`` and simulator as ``test_commands_through_nginx.py``; every
command asks ``/v1`` through nginx, with ``--ca-bundle``; a wrong password is the same 401
finding as on Ollama's native API, and the canary password is never printed or stored.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import CLIResult, run_program

from .conftest import MODEL, PKI, USER, Nginx
from .test_commands_through_nginx import assert_no_secret

pytestmark = pytest.mark.nginx


def run(args: list[str], stdin: str | None = None) -> CLIResult:
    return run_program(args, env={"COLUMNS": "200"}, timeout=90, input=stdin)


def test_bench_and_compare_on_v1_through_https_and_basic_auth(
    tls: Nginx, pki: PKI, isolated_env: Path
) -> None:
    out = Path("run.json").resolve()
    args = ["bench", "--auto", "--model", MODEL, "--runs", "1", "--warmup", "0"]
    args += ["--num-predict", "8", "--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem)]
    result = run([*args, "--api", "ollama,openai", "--output", str(out)])
    assert result.returncode == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert [s["api"] for s in doc["servers"]] == ["ollama", "openai"]
    assert all(r["ok"] for r in doc["results"]), doc["results"]
    assert {r["server"] for r in doc["results"]} == {"ollama /api", "ollama /v1"}
    assert all(
        s["base_url"] == f"https://{USER}:***@127.0.0.1:{tls.https_port}" for s in doc["servers"]
    )
    assert_no_secret(result, isolated_env, out)


def test_chat_doctor_on_v1_through_https_and_basic_auth(
    tls: Nginx, pki: PKI, isolated_env: Path
) -> None:
    common = ["--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem), "--api", "openai"]
    doctor = run(["doctor", *common])
    assert doctor.returncode == 0, doctor.output
    assert f"Basic auth as {USER}: accepted" in doctor.stdout
    assert "OpenAI-compatible API (/v1)" in doctor.stdout
    chat = run(["chat", "--model", MODEL, *common], stdin="Hello there\n")
    assert chat.returncode == 0, chat.output
    assert chat.stdout.strip()
    auto = run(["chat", "--auto", *common])
    assert auto.returncode == 0, auto.output
    for result in (doctor, chat, auto):
        assert_no_secret(result, isolated_env)


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_wrong_password_on_v1_is_401_exit_2(
    command: list[str], tls: Nginx, pki: PKI, isolated_env: Path
) -> None:
    url = tls.https_url(password="wrong-password")
    result = run([*command, "--base-url", url, "--ca-bundle", str(pki.ca_pem), "--api", "openai"])
    assert result.returncode == 2, result.output
    assert "401" in result.output
    assert_no_secret(result, isolated_env)
