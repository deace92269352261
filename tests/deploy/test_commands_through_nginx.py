"""Every command, run the way a user runs it, through the shipped nginx configs.

``ollamakit doctor``, ``ollamakit bench --auto`` (and ``ollama-benchmark.py --auto``),
``ollamakit chat --auto`` (and ``hi-ai.py --auto``) through ``https://user:pass@127.0.0.1:PORT``
with ``--ca-bundle``, through ``.env`` in the working directory and through the environment;
then each failure a proxy adds (401, untrusted certificate, 502, 301, the Host-header 403, a
buffering proxy), asserting the message and the exit status.

Every run is also checked for the canary password: not in stdout/stderr, not in any report
written with ``--output``, not in any file under ``OLLAMAKIT_HOME`` (history database
included), in any of the forms it could take (raw, percent-encoded, base64 in a Basic header).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import CLIResult, assert_no_traceback, run_program

from .conftest import (
    API_KEY,
    MODEL,
    PASSWORD,
    PKI,
    USER,
    Nginx,
    secret_forms,
)

pytestmark = pytest.mark.nginx


def assert_no_secret(result: CLIResult, home: Path, *files: Path) -> None:
    """The canary secrets appear in no output, no report and nothing under OLLAMAKIT_HOME."""
    assert_no_traceback(result)
    stored = [p for p in home.rglob("*") if p.is_file()] if home.exists() else []
    for secret in secret_forms():
        assert secret not in result.output, f"{secret!r} printed:\n{result.output}"
        for path in (*files, *stored):
            assert secret.encode() not in path.read_bytes(), f"{secret!r} stored in {path}"


def run(args: list[str], env: dict[str, str] | None = None, script: str | None = None) -> CLIResult:
    return run_program(args, env={"COLUMNS": "200", **(env or {})}, timeout=90, script=script)


# --------------------------------------------------------------------------- it works


def test_doctor_through_https_and_basic_auth(
    tls: Nginx, pki: PKI, isolated_env: Path, tmp_path: Path
) -> None:
    result = run(["doctor", "--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem)])
    assert result.returncode == 0, result.output
    out = result.stdout
    assert "All checks passed" in out
    assert f"Basic auth as {USER}: accepted" in out
    assert "Ollama is running" in out
    assert MODEL in out
    assert "chunks arrived as they were produced" in out
    assert f"https://{USER}:***@127.0.0.1:{tls.https_port}" in out
    assert_no_secret(result, isolated_env)


def test_doctor_json_through_the_proxy(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    result = run(
        ["doctor", "--json", "--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem)]
    )
    assert result.returncode == 0, result.output
    document = json.loads(result.stdout)
    text = json.dumps(document)
    assert '"fail"' not in text
    assert "streaming" in text
    assert_no_secret(result, isolated_env)


def test_doctor_with_dotenv(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    """``.env`` in the working directory, as the seed's section 1 describes."""
    Path(".env").write_text(
        f"OLLAMA_BASE_URL={tls.https_url()}\nOLLAMA_CA_BUNDLE={pki.ca_pem}\n", encoding="utf-8"
    )
    result = run(["doctor", "--no-generate"])
    assert result.returncode == 0, result.output
    assert "OLLAMA_BASE_URL ← .env" in result.stdout
    assert "All checks passed" in result.stdout
    assert_no_secret(result, isolated_env)


def test_doctor_with_environment(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    env = {"OLLAMA_BASE_URL": tls.https_url(), "OLLAMA_CA_BUNDLE": str(pki.ca_pem)}
    result = run(["doctor", "--no-generate"], env)
    assert result.returncode == 0, result.output
    assert "OLLAMA_BASE_URL ← environment" in result.stdout
    assert_no_secret(result, isolated_env)


def test_doctor_with_api_key(apikey: Nginx, pki: PKI, isolated_env: Path) -> None:
    env = {"OLLAMA_API_KEY": API_KEY, "OLLAMA_CA_BUNDLE": str(pki.ca_pem)}
    result = run(["doctor", "--base-url", apikey.https_origin], env)
    assert result.returncode == 0, result.output
    assert "All checks passed" in result.stdout
    assert_no_secret(result, isolated_env)


def test_bench_auto_through_the_proxy_with_reports(
    tls: Nginx, pki: PKI, isolated_env: Path
) -> None:
    reports = [Path(f"run.{ext}").resolve() for ext in ("json", "csv", "md", "html")]
    args = ["bench", "--auto", "--model", MODEL, "--runs", "1", "--warmup", "0"]
    args += ["--num-predict", "8", "--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem)]
    for path in reports:
        args += ["--output", str(path)]
    result = run(args)
    assert result.returncode == 0, result.output
    document = json.loads(reports[0].read_text(encoding="utf-8"))
    assert document["server"]["base_url"] == f"https://{USER}:***@127.0.0.1:{tls.https_port}"
    assert document["results"], document
    assert all(r["ok"] for r in document["results"]), document["results"]
    assert all(r["model"] == MODEL for r in document["results"])
    # Streamed through the proxy, not in one lump: tokens came one interval apart.
    assert all(r["ttft_ms"] < r["total_ms"] / 2 for r in document["results"])
    assert any(isolated_env.rglob("*")), "the run was not saved in the history store"
    assert_no_secret(result, isolated_env, *reports)


def test_seed_commands_with_dotenv(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    """``uv run ollama-benchmark.py --auto`` and ``uv run hi-ai.py --auto`` with only a .env."""
    Path(".env").write_text(
        f"OLLAMA_BASE_URL={tls.https_url()}\nOLLAMA_CA_BUNDLE={pki.ca_pem}\n"
        "GREETING_TIMEOUT_SECONDS=60\n",
        encoding="utf-8",
    )
    chat = run(["--auto"], script="hi-ai.py")
    assert chat.returncode == 0, chat.output
    assert MODEL in chat.stdout
    assert_no_secret(chat, isolated_env)
    bench = run(
        ["--auto", "--runs", "1", "--warmup", "0", "--num-predict", "4"],
        script="ollama-benchmark.py",
    )
    assert bench.returncode == 0, bench.output
    assert MODEL in bench.stdout
    assert_no_secret(bench, isolated_env)


def test_chat_auto_with_environment(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    env = {"OLLAMA_BASE_URL": tls.https_url(), "OLLAMA_CA_BUNDLE": str(pki.ca_pem)}
    result = run(["chat", "--auto"], env)
    assert result.returncode == 0, result.output
    assert MODEL in result.stdout
    assert "ok" in result.stdout
    assert_no_secret(result, isolated_env)


def test_chat_with_piped_input(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    env = {"OLLAMA_BASE_URL": tls.https_url(), "OLLAMA_CA_BUNDLE": str(pki.ca_pem)}
    result = run_program(
        ["chat", "--model", MODEL], env=env, input="Hello there\n/bye\n", timeout=60
    )
    assert result.returncode == 0, result.output
    assert result.stdout.strip()
    assert_no_secret(result, isolated_env)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_wrong_password_is_401_exit_2(
    command: list[str], tls: Nginx, pki: PKI, isolated_env: Path
) -> None:
    url = tls.https_url(password="wrong-" + PASSWORD)
    result = run([*command, "--base-url", url, "--ca-bundle", str(pki.ca_pem)])
    assert result.returncode == 2, result.output
    assert "Authentication failed (HTTP 401)" in result.output
    assert "rejected" in result.output
    assert_no_secret(result, isolated_env)


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_no_ca_names_ca_bundle(command: list[str], tls: Nginx, isolated_env: Path) -> None:
    result = run([*command, "--base-url", tls.https_url()])
    assert result.returncode == 2, result.output
    assert "is not trusted" in result.output
    assert "--ca-bundle" in result.output
    assert_no_secret(result, isolated_env)


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_ollama_down_is_502(command: list[str], down: Nginx, pki: PKI, isolated_env: Path) -> None:
    result = run([*command, "--base-url", down.https_url(), "--ca-bundle", str(pki.ca_pem)])
    assert result.returncode == 2, result.output
    assert "is up, but Ollama behind it is not answering (HTTP 502)" in result.output
    assert_no_secret(result, isolated_env)


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_http_redirect_says_use_https(command: list[str], tls: Nginx, isolated_env: Path) -> None:
    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{tls.http_port}"
    result = run([*command, "--base-url", url])
    assert result.returncode == 2, result.output
    assert "redirects (HTTP 301)" in result.output
    assert f"OLLAMA_BASE_URL=https://{USER}:***@127.0.0.1:{tls.https_port}" in result.output
    assert_no_secret(result, isolated_env)


@pytest.mark.parametrize("command", [["doctor"], ["chat", "--auto"], ["bench", "--auto"]])
def test_host_header_403_names_proxy_set_header(
    command: list[str], host: Nginx, pki: PKI, isolated_env: Path
) -> None:
    result = run([*command, "--base-url", host.https_url(), "--ca-bundle", str(pki.ca_pem)])
    assert result.returncode == 2, result.output
    assert "HTTP 403" in result.output
    assert "proxy_set_header Host localhost:11434" in result.output
    assert_no_secret(result, isolated_env)


def test_doctor_warns_about_a_buffering_proxy(
    buffering: Nginx, pki: PKI, isolated_env: Path
) -> None:
    result = run(["doctor", "--base-url", buffering.https_url(), "--ca-bundle", str(pki.ca_pem)])
    assert result.returncode == 0, result.output  # it works, with a warning
    assert "arrived in one lump" in result.stdout
    assert "proxy_buffering off" in result.stdout
    assert_no_secret(result, isolated_env)


def test_doctor_is_quiet_about_a_streaming_proxy(tls: Nginx, pki: PKI, isolated_env: Path) -> None:
    """The buffering warning is not a false alarm: the shipped config does not trigger it."""
    result = run(
        ["doctor", "--json", "--base-url", tls.https_url(), "--ca-bundle", str(pki.ca_pem)]
    )
    assert result.returncode == 0, result.output
    assert "proxy_buffering" not in result.stdout
    assert "one lump" not in result.stdout


def test_doctor_insecure_works_but_warns(tls: Nginx, isolated_env: Path) -> None:
    result = run(["doctor", "--no-generate", "--insecure", "--base-url", tls.https_url()])
    assert result.returncode == 0, result.output
    assert "TLS certificate verification is OFF (--insecure)" in result.output
    assert_no_secret(result, isolated_env)
