"""Real nginx in front of the simulator, with the shipped configs from ``deploy/nginx/``.

The harness, bottom up:

* :func:`render_site` turns a shipped config into one that runs here, by plain text
  substitution of the placeholders the config documents (``ollama.example.com``'s certificate
  paths, ``/etc/nginx/.htpasswd``, ``127.0.0.1:11434``, ``listen 80``/``443``) plus optional
  *tweaks* (``{old: new}``) for the broken variants the tests need (``Host $host``,
  ``proxy_buffering on``). A placeholder that is not found is an error, so a config that drifts
  from what the docs say fails loudly instead of testing something else.
* :class:`Nginx` writes a minimal top-level ``nginx.conf`` into its own prefix directory
  (``daemon off``, ``master_process off``: one process, the test's user, every path under the
  prefix) around ``http { include site.conf; }`` and runs it on free loopback ports.
* :class:`Simulator` runs ``ollamakit sim`` in a subprocess on a free loopback port, with one small
  model whose token interval is known, so tests can tell streaming from buffering.
* :class:`PKI` is a trustme CA with a server certificate for 127.0.0.1 and localhost, and an
  htpasswd file with a canary password, so tests can prove the password leaks nowhere.

Fixtures are module-scoped where starting things costs time: one simulator and a few nginx
instances per test module.
"""

from __future__ import annotations

import base64
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ollamakit.sim import ModelSpec, SimConfig, SimProcess, start_subprocess
from tests.support import closed_port, unused_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX_DIR = DEPLOY / "nginx"
SHIPPED_CONFIGS = ("ollama.conf", "ollama-tls-auth.conf", "ollama-apikey.conf")

USER = "ollama-user"
PASSWORD = "canary-Pw-7731"  # must never show up in anything the tools print or store
# A second account whose password needs percent-encoding in OLLAMA_BASE_URL.
ODD_USER = "team"
ODD_PASSWORD = "c@nary:Pw/77#31"
API_KEY = "canary-Key-7731-0123456789abcdef0123456789abcdef"


def secret_forms() -> list[str]:
    """Every way the canary secrets could leak: raw, percent-encoded, as a Basic header."""
    forms = [PASSWORD, ODD_PASSWORD, quote(ODD_PASSWORD, safe=""), API_KEY]
    for user, password in ((USER, PASSWORD), (ODD_USER, ODD_PASSWORD)):
        forms.append(base64.b64encode(f"{user}:{password}".encode()).decode())
    return forms


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    """A port number for nginx to listen on (nginx must be told one; it cannot report port 0).

    From this pytest-xdist worker's own block (``tests.support.unused_port``), so parallel
    workers never pick the same one; :func:`start_nginx` retries if something else took it.
    """
    return unused_port()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def wait_for_pid_file(
    path: Path, proc: subprocess.Popen[bytes], what: str, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not write {path} within {timeout} s")
        time.sleep(0.01)


# --------------------------------------------------------------------------- config rendering

#: Placeholders of the shipped configs (documented in each file's header) -> test values.
PLACEHOLDERS = {
    "cert": "/etc/letsencrypt/live/ollama.example.com/fullchain.pem",
    "key": "/etc/letsencrypt/live/ollama.example.com/privkey.pem",
    "htpasswd": "/etc/nginx/.htpasswd",
    "upstream": "server 127.0.0.1:11434;",
    "api_key": "CHANGE-ME-to-a-long-random-key",
    "acme_root": "root /var/www/certbot;",
    "redirect": "return 301 https://$host$request_uri;",
}


@dataclass
class Site:
    """Values substituted into a shipped config."""

    upstream: str  # host:port of the simulator
    http_port: int
    https_port: int
    cert: Path | None = None
    key: Path | None = None
    htpasswd: Path | None = None
    api_key: str = API_KEY
    acme_root: Path | None = None


def _replace(text: str, old: str, new: str, name: str, *, count: int | None = None) -> str:
    """Replace ``old`` in directives (not in comments); it must occur (``count`` times)."""
    lines = text.splitlines(keepends=True)
    found = 0
    for i, line in enumerate(lines):
        code, hash_, comment = line.partition("#")
        if old in code:
            found += code.count(old)
            lines[i] = code.replace(old, new) + hash_ + comment
    if not found or (count is not None and found != count):
        raise AssertionError(f"{name}: expected {count or 'some'} occurrence(s) of {old!r}")
    return "".join(lines)


def render_site(name: str, site: Site, tweaks: Mapping[str, str] | None = None) -> str:
    """A shipped config with its placeholders replaced by this machine's test values."""
    text = (NGINX_DIR / name).read_text(encoding="utf-8")
    # IPv6 listeners may be unavailable in a container; the tests use 127.0.0.1 only.
    text, n = re.subn(r"^[ \t]*listen \[::\]:\d+[^\n]*\n", "", text, flags=re.M)
    assert n >= 1, f"{name}: no IPv6 listen line (expected next to each IPv4 one)"
    text = _replace(text, "listen 80;", f"listen 127.0.0.1:{site.http_port};", name, count=1)
    assert text.count("upstream ollama_backend {") == 1, f"{name}: no upstream block"
    text = _replace(text, PLACEHOLDERS["upstream"], f"server {site.upstream};", name, count=1)
    if "listen 443 ssl;" in text:
        assert site.cert and site.key
        text = _replace(
            text, "listen 443 ssl;", f"listen 127.0.0.1:{site.https_port} ssl;", name, count=1
        )
        text = _replace(text, PLACEHOLDERS["cert"], str(site.cert), name, count=1)
        text = _replace(text, PLACEHOLDERS["key"], str(site.key), name, count=1)
        # The redirect names the https port, which is not 443 here.
        text = _replace(
            text,
            PLACEHOLDERS["redirect"],
            f"return 301 https://$host:{site.https_port}$request_uri;",
            name,
            count=1,
        )
        if site.acme_root is not None:
            text = _replace(text, PLACEHOLDERS["acme_root"], f"root {site.acme_root};", name)
    if PLACEHOLDERS["htpasswd"] in text:
        assert site.htpasswd
        text = _replace(text, PLACEHOLDERS["htpasswd"], str(site.htpasswd), name, count=1)
    if PLACEHOLDERS["api_key"] in text:
        text = _replace(text, PLACEHOLDERS["api_key"], site.api_key, name, count=1)
    for old, new in (tweaks or {}).items():
        text = _replace(text, old, new, name)
    return text


# --------------------------------------------------------------------------- nginx


TOP_LEVEL = """\
# Test harness: one process, everything under {prefix}.
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{
    worker_connections 256;
}}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/client_body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/site.conf;
}}
"""


@dataclass
class Nginx:
    """One nginx process serving one rendered site config."""

    binary: str
    prefix: Path
    site_text: str
    http_port: int
    https_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def write(self) -> Path:
        (self.prefix / "tmp").mkdir(parents=True, exist_ok=True)
        (self.prefix / "site.conf").write_text(self.site_text, encoding="utf-8")
        conf = self.prefix / "nginx.conf"
        conf.write_text(TOP_LEVEL.format(prefix=self.prefix), encoding="utf-8")
        return conf

    def command(self, *extra: str) -> list[str]:
        return [
            self.binary,
            "-p",
            str(self.prefix),
            "-e",
            str(self.prefix / "error.log"),
            "-c",
            str(self.prefix / "nginx.conf"),
            *extra,
        ]

    def test_config(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the written config."""
        self.write()
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> Nginx:
        self.write()
        (self.prefix / "nginx.pid").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            # nginx writes its pid file only once every listen socket is bound: until then a
            # connection that succeeds may reach another program that holds the port.
            wait_for_pid_file(self.prefix / "nginx.pid", self.proc, "nginx")
            wait_for_port(self.http_port, self.proc, "nginx")
            if f":{self.https_port} ssl" in self.site_text:
                wait_for_port(self.https_port, self.proc, "nginx")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.error_log()}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def http_origin(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def https_url(self, user: str | None = USER, password: str | None = PASSWORD) -> str:
        """``https://user:password@127.0.0.1:PORT`` (password percent-encoded)."""
        if user is None:
            return self.https_origin
        secret = f":{quote(password, safe='')}" if password is not None else ""
        return f"https://{quote(user, safe='')}{secret}@127.0.0.1:{self.https_port}"


# --------------------------------------------------------------------------- PKI


@dataclass
class PKI:
    """A private CA, a server certificate for 127.0.0.1/localhost, an htpasswd file."""

    ca_pem: Path
    cert: Path
    key: Path
    htpasswd: Path


def make_htpasswd(path: Path, accounts: Mapping[str, str]) -> None:
    """Write an htpasswd file with ``htpasswd`` (bcrypt) or, without it, ``openssl passwd``."""
    htpasswd = shutil.which("htpasswd")
    path.unlink(missing_ok=True)
    for i, (user, password) in enumerate(accounts.items()):
        if htpasswd:
            flags = "-bcB" if i == 0 else "-bB"
            subprocess.run([htpasswd, flags, str(path), user, password], check=True, timeout=30)
        else:
            hashed = subprocess.run(
                ["openssl", "passwd", "-apr1", "-stdin"],
                input=password,
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            ).stdout.strip()
            with path.open("a", encoding="utf-8") as f:
                f.write(f"{user}:{hashed}\n")


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    binary = find_nginx()
    if binary is None:
        pytest.skip("the nginx binary is not installed (apt-get install nginx; .ci/run does it)")
    return binary


@pytest.fixture(scope="session")
def pki(ca: Any, tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Files for nginx from the session CA (``ca``, tests/conftest.py), once per worker."""
    folder = tmp_path_factory.mktemp("pki")
    server = ca.issue_cert("127.0.0.1", "localhost")
    pki = PKI(
        ca_pem=folder / "ca.pem",
        cert=folder / "fullchain.pem",
        key=folder / "privkey.pem",
        htpasswd=folder / "htpasswd",
    )
    ca.cert_pem.write_to_path(str(pki.ca_pem))
    with pki.cert.open("wb") as f:
        for blob in server.cert_chain_pems:
            f.write(blob.bytes())
    server.private_key_pem.write_to_path(str(pki.key))
    make_htpasswd(pki.htpasswd, {USER: PASSWORD, ODD_USER: ODD_PASSWORD})
    return pki


# --------------------------------------------------------------------------- simulator

MODEL = "tiny:1b"
TOKEN_INTERVAL_S = 0.025  # eval_tps 40
REPLY_TOKENS = 24  # 575 ms: a buffered lump stands out from a stream, even on a busy box


def sim_config() -> SimConfig:
    """One small model with a steady, measurable token interval and a short reply (~3 KB)."""
    return SimConfig(
        models=(
            ModelSpec(
                MODEL,
                load_ms=5,
                warm_load_ms=1,
                prompt_tps=math.inf,
                eval_tps=1 / TOKEN_INTERVAL_S,
                reply_tokens=REPLY_TOKENS,
            ),
        )
    )


@dataclass
class Simulator:
    """``ollamakit sim`` in a subprocess on 127.0.0.1, a free port (:func:`start_subprocess`)."""

    config: SimConfig
    process: SimProcess | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.process is not None, "call start() first"
        return self.process.url

    @property
    def address(self) -> str:
        """``host:port``, for the nginx upstream."""
        return self.url.removeprefix("http://")

    def start(self) -> Simulator:
        self.process = start_subprocess(config=self.config)
        return self

    def requests(self) -> list[dict[str, Any]]:
        """The simulator's request log (what reached Ollama, after nginx)."""
        assert self.process is not None
        return [record.to_json() for record in self.process.requests()]

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The simulator on 127.0.0.1, so Ollama's Host-header rule applies."""
    simulator = Simulator(sim_config()).start()
    yield simulator
    simulator.stop()


NGINX_START_ATTEMPTS = 5


@pytest.fixture(scope="module")
def start_nginx(
    nginx_binary: str, pki: PKI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """``start_nginx(config_name, upstream, tweaks=None) -> Nginx``; all stopped at module end."""
    started: list[Nginx] = []

    def start(name: str, upstream: str, tweaks: Mapping[str, str] | None = None) -> Nginx:
        # Own prefix per instance: config, pid file, logs and temp paths never shared.
        prefix = tmp_path_factory.mktemp("nginx")
        acme = prefix / "acme"
        acme.mkdir()
        for attempt in range(NGINX_START_ATTEMPTS):
            site = Site(
                upstream=upstream,
                http_port=free_port(),
                https_port=free_port(),
                cert=pki.cert,
                key=pki.key,
                htpasswd=pki.htpasswd,
                acme_root=acme,
            )
            server = Nginx(
                nginx_binary,
                prefix,
                render_site(name, site, tweaks),
                site.http_port,
                site.https_port,
            )
            started.append(server)
            try:
                return server.start()
            except RuntimeError as exc:
                # Another program took a port between free_port() and nginx's bind: new ports.
                if "Address already in use" not in str(exc) or attempt + 1 == NGINX_START_ATTEMPTS:
                    raise
                (prefix / "error.log").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    yield start
    for server in started:
        server.stop()


# --------------------------------------------------------------------------- proxy variants

#: The "host" variant forwards the server's public name, as ``proxy_set_header Host $host``
#: does in production, where clients connect by DNS name (here they connect to 127.0.0.1, so
#: ``$host`` would be an IP address, which Ollama allows).
PUBLIC_HOST = {"proxy_set_header Host localhost:11434;": "proxy_set_header Host $server_name;"}
#: The seed's literal directive.
SEED_HOST = {"proxy_set_header Host localhost:11434;": "proxy_set_header Host $host;"}
#: Buffers that hold a whole short reply: the client gets it in one lump at the end.
BUFFERING = {
    "proxy_buffering off;": "proxy_buffering on; proxy_buffers 16 64k; proxy_buffer_size 64k;"
}

StartNginx = Callable[..., Nginx]


@pytest.fixture(scope="module")
def tls(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama-tls-auth.conf`` as shipped: HTTPS + Basic auth, http -> https 301."""
    return start_nginx("ollama-tls-auth.conf", sim.address)


@pytest.fixture(scope="module")
def plain(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama.conf`` as shipped."""
    return start_nginx("ollama.conf", sim.address)


@pytest.fixture(scope="module")
def apikey(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama-apikey.conf`` as shipped, with :data:`API_KEY` in its map."""
    return start_nginx("ollama-apikey.conf", sim.address)


@pytest.fixture(scope="module")
def down(start_nginx: StartNginx) -> Nginx:
    """``ollama-tls-auth.conf`` whose upstream has nothing listening: 502."""
    # closed_port(): bound, never listening, for the whole run: refused, never answered.
    return start_nginx("ollama-tls-auth.conf", f"127.0.0.1:{closed_port()}")


@pytest.fixture(scope="module")
def host(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama-tls-auth.conf`` forwarding a public Host name: 403 from the simulator."""
    return start_nginx("ollama-tls-auth.conf", sim.address, PUBLIC_HOST)


@pytest.fixture(scope="module")
def seed(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama.conf`` with the seed's ``proxy_set_header Host $host``."""
    return start_nginx("ollama.conf", sim.address, SEED_HOST)


@pytest.fixture(scope="module")
def buffering(start_nginx: StartNginx, sim: Simulator) -> Nginx:
    """``ollama-tls-auth.conf`` with ``proxy_buffering on``."""
    return start_nginx("ollama-tls-auth.conf", sim.address, BUFFERING)
