"""Only the configured server is contacted: a redirect (to another server on loopback, as a
hostile proxy would send) is reported, never followed, by doctor, chat and bench, and the
credentials never travel to the other server.
"""

from __future__ import annotations

from pathlib import Path

from tests.security.hostile import HostileServer
from tests.support import run_program


def test_redirects_are_never_followed(suite_file: Path) -> None:
    with (
        HostileServer(["m:1b"]) as elsewhere,
        HostileServer(["m:1b"], redirect_to=elsewhere.url) as server,
    ):
        url = server.url.replace("http://", "http://ollama-user:pw@")
        commands = [
            ["doctor"],
            ["chat", "--auto"],
            ["chat", "--model", "m:1b"],
            ["bench", "--auto", "--runs", "1", "--suite", str(suite_file), "--no-save"],
        ]
        results = [run_program([*c, "--base-url", url], input="hi\n") for c in commands]
    assert server.requests, "the configured server was asked"
    assert elsewhere.requests == [], elsewhere.requests
    for result in results:
        assert result.returncode != 0, result.output
        assert "307" in result.output or "redirect" in result.output.lower(), result.output
