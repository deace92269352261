"""The deploy kit's files are valid and say what the docs promise.

``nginx -t`` runs on every shipped config (placeholders substituted, see ``conftest.py``). Docker
is not available here, so the compose files are checked as YAML against the structure Compose
needs and the seed describes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    DEPLOY,
    NGINX_DIR,
    PKI,
    SHIPPED_CONFIGS,
    Nginx,
    Site,
    free_port,
    render_site,
)

# --------------------------------------------------------------------------- nginx configs


def _directives(text: str) -> list[str]:
    """Config lines without comments, whitespace-normalised."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [" ".join(line.split()) for line in lines if line]


def test_every_shipped_config_is_listed() -> None:
    assert sorted(p.name for p in NGINX_DIR.glob("*.conf")) == sorted(SHIPPED_CONFIGS)


@pytest.mark.nginx
@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_nginx_accepts_shipped_config(
    name: str, nginx_binary: str, pki: PKI, tmp_path: Path
) -> None:
    site = Site(
        upstream="127.0.0.1:9",
        http_port=free_port(),
        https_port=free_port(),
        cert=pki.cert,
        key=pki.key,
        htpasswd=pki.htpasswd,
        acme_root=tmp_path,
    )
    server = Nginx(nginx_binary, tmp_path / "prefix", render_site(name, site), 0, 0)
    result = server.test_config()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.nginx
def test_nginx_t_catches_a_broken_config(nginx_binary: str, pki: PKI, tmp_path: Path) -> None:
    """The check above can fail: a typo in a directive is rejected."""
    site = Site("127.0.0.1:9", free_port(), free_port(), pki.cert, pki.key, pki.htpasswd)
    text = render_site("ollama.conf", site, {"proxy_buffering off;": "proxy_bufering off;"})
    result = Nginx(nginx_binary, tmp_path / "prefix", text, 0, 0).test_config()
    assert result.returncode != 0
    assert "proxy_bufering" in result.stderr


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_config_is_streaming_safe(name: str) -> None:
    directives = _directives((NGINX_DIR / name).read_text(encoding="utf-8"))
    for needed in (
        "proxy_http_version 1.1;",
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_request_buffering off;",
        "proxy_read_timeout 600s;",
        "proxy_send_timeout 600s;",
        "proxy_set_header Host localhost:11434;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "gzip off;",
    ):
        assert needed in directives, f"{name} lacks {needed}"
    body = next(d for d in directives if d.startswith("client_max_body_size"))
    assert re.fullmatch(r"client_max_body_size (0|\d+[mMgG]);", body), body
    # The seed's `Host $host` makes a loopback-bound Ollama answer 403: it must not be active.
    assert not any(re.match(r"proxy_set_header Host \$host", d) for d in directives)


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_config_explains_the_host_header(name: str) -> None:
    text = (NGINX_DIR / name).read_text(encoding="utf-8")
    comments = " ".join(
        line.split("#", 1)[1] for line in text.splitlines() if "#" in line and "Host" in line
    )
    assert "proxy_set_header Host $host" in comments
    assert "403" in comments


@pytest.mark.parametrize("name", ["ollama-tls-auth.conf", "ollama-apikey.conf"])
def test_tls_configs_redirect_http_and_use_modern_tls(name: str) -> None:
    directives = _directives((NGINX_DIR / name).read_text(encoding="utf-8"))
    assert "return 301 https://$host$request_uri;" in directives
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in directives
    assert any(d.startswith("add_header Strict-Transport-Security") for d in directives)
    assert 'proxy_set_header Authorization "";' in directives  # the secret stays at the proxy


def test_basic_auth_config_checks_a_password() -> None:
    directives = _directives((NGINX_DIR / "ollama-tls-auth.conf").read_text(encoding="utf-8"))
    assert "auth_basic_user_file /etc/nginx/.htpasswd;" in directives
    assert any(d.startswith("auth_basic ") for d in directives)


def test_apikey_config_checks_a_bearer_key() -> None:
    text = (NGINX_DIR / "ollama-apikey.conf").read_text(encoding="utf-8")
    assert "map $http_authorization $ollama_api_key_ok" in text
    assert '"Bearer CHANGE-ME-to-a-long-random-key" 1;' in text


# --------------------------------------------------------------------------- compose files


def _compose(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the KEY=value list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_file_structure(name: str) -> None:
    data = _compose(name)
    assert set(data) <= {"services", "volumes", "networks", "name"}
    service = data["services"]["ollama"]
    assert str(service["image"]).startswith("ollama/ollama")
    assert service["restart"] in ("unless-stopped", "always")
    # A named volume for the models, declared at top level.
    mounts = [str(v) for v in service["volumes"]]
    named = [m.split(":", 1)[0] for m in mounts if m.endswith(":/root/.ollama")]
    assert named and named[0] in (data.get("volumes") or {}), mounts
    assert _environment(service)["OLLAMA_HOST"] == "0.0.0.0:11434"
    # Published on loopback only: nginx on the same host is the way in (the seed's rule 1).
    ports = [str(p) for p in service["ports"]]
    assert ports == ["127.0.0.1:11434:11434"]
    health = service["healthcheck"]
    assert health["test"][0] in ("CMD", "CMD-SHELL")
    assert "ollama" in " ".join(health["test"][1:])
    assert "curl" not in " ".join(health["test"])  # the image has no curl
    for key in ("interval", "timeout", "retries"):
        assert key in health


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_file_documents_server_options(name: str) -> None:
    text = (DEPLOY / name).read_text(encoding="utf-8")
    for option in (
        "OLLAMA_KEEP_ALIVE",
        "OLLAMA_NUM_PARALLEL",
        "OLLAMA_MAX_QUEUE",
        "OLLAMA_FLASH_ATTENTION",
        "OLLAMA_ORIGINS",
    ):
        assert option in text, f"{name} does not mention {option}"
    if "gpu" in name:
        assert "CUDA_VISIBLE_DEVICES" in text


def test_gpu_compose_reserves_nvidia_devices() -> None:
    service = _compose("docker-compose.gpu.yml")["services"]["ollama"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert _environment(service)["OLLAMA_FLASH_ATTENTION"] == "1"


def test_cpu_compose_reserves_no_gpu() -> None:
    service = _compose("docker-compose.yml")["services"]["ollama"]
    assert "deploy" not in service


# --------------------------------------------------------------------------- docs/remote.md

REMOTE_DOC = DEPLOY.parent / "docs" / "remote.md"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def test_remote_doc_links_resolve() -> None:
    text = REMOTE_DOC.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    anchors |= {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", text):
        assert target in anchors, f"docs/remote.md links to a missing anchor #{target}"
    for target in re.findall(r"\]\((\.\./[^)#]+)\)", text):
        assert (REMOTE_DOC.parent / target).resolve().exists(), target


def test_remote_doc_covers_both_languages_and_every_shipped_file() -> None:
    text = REMOTE_DOC.read_text(encoding="utf-8")
    english, _, chinese = text.partition('<a id="繁體中文"></a>')
    assert chinese, "the Traditional Chinese half is missing"
    for half in (english, chinese):
        for needed in (
            "docker-compose.yml",
            "docker-compose.gpu.yml",
            "ollama.conf",
            "ollama-tls-auth.conf",
            "ollama-apikey.conf",
            "proxy_set_header Host localhost:11434",
            "proxy_buffering off",
            "--ca-bundle",
            "certbot",
            "htpasswd",
            "launchctl setenv",
            "systemctl edit ollama.service",
            "ollamakit doctor",
            "%40",
            "OLLAMA_KEEP_ALIVE",
            "CUDA_VISIBLE_DEVICES",
        ):
            assert needed in half, needed


def test_deploy_readme_links_resolve() -> None:
    readme = DEPLOY / "README.md"
    text = readme.read_text(encoding="utf-8")
    doc = REMOTE_DOC.read_text(encoding="utf-8")
    doc_anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", doc, flags=re.M)}
    for target in re.findall(r"\]\(([^)]+)\)", text):
        path, _, anchor = target.partition("#")
        assert (readme.parent / path).resolve().exists(), target
        if anchor:
            assert path.endswith("remote.md") and anchor in doc_anchors, target
    for name in ("docker-compose.yml", "docker-compose.gpu.yml", *SHIPPED_CONFIGS):
        assert name in text
