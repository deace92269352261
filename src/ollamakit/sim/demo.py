"""``--demo``: the built-in simulator, started in this process, for a machine without Ollama.

``uv run ollama-benchmark.py --auto --demo`` is the first command a newcomer can run: there is
no server to install, nothing listens on a port anyone chose, nothing is left running. The
simulator (:func:`ollamakit.sim.run_in_thread`) serves its three default models on an
ephemeral loopback port in a daemon thread for as long as the command runs; the command is
pointed at it with :func:`demo_settings`, which also drops every credential and TLS setting
(they belong to a real server, and must never be sent to the simulator).

The numbers such a run produces are the simulator's scripted timings, not a measurement of
this machine: every place that shows them says so (the bench header and summary, ``"demo":
true`` in the result document, a banner in the HTML and Markdown reports).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from ollamakit.config import Settings, parse_base_url
from ollamakit.sim.config import SimConfig, default_models
from ollamakit.sim.server import ThreadedSim, run_in_thread

#: Where ``settings.sources`` says the server URL came from in a demo.
DEMO_SOURCE: Final = "demo"


def demo_config() -> SimConfig:
    """The demo's simulator: the default models (three small ones whose replies take well
    under a second each, so a demo run ends in seconds)."""
    return SimConfig(models=default_models())


def start_demo() -> ThreadedSim:
    """A simulator on ``127.0.0.1`` (an ephemeral port) in a daemon thread; use it as a
    context manager so it stops with the command."""
    return run_in_thread(demo_config(), host="127.0.0.1", port=0)


def demo_settings(settings: Settings, url: str) -> Settings:
    """``settings`` pointed at the demo simulator at ``url``, without credentials or TLS.

    >>> from ollamakit.config import Flags, load_settings
    >>> s = load_settings(Flags(), environ={"OLLAMA_API_KEY": "k"})
    >>> d = demo_settings(s, "http://127.0.0.1:4321")
    >>> d.base_url.origin, d.api_key, d.sources["OLLAMA_BASE_URL"]
    ('http://127.0.0.1:4321', None, 'demo')
    """
    sources = {**settings.sources, "OLLAMA_BASE_URL": DEMO_SOURCE}
    return dataclasses.replace(
        settings,
        base_url=parse_base_url(url),
        api_key=None,
        ca_bundle=None,
        insecure=False,
        sources=sources,
    )


def refused_flag(settings: Settings, insecure: bool) -> str | None:
    """The server option given on the command line that ``--demo`` cannot honour, if any
    (``--base-url``, ``--ca-bundle``, ``--insecure``): they name a real server. Settings from
    the environment or ``.env`` are not refused; the demo simply does not use them."""
    for key, flag in (("OLLAMA_BASE_URL", "--base-url"), ("OLLAMA_CA_BUNDLE", "--ca-bundle")):
        if settings.sources.get(key) == "flag":
            return flag
    return "--insecure" if insecure else None


__all__ = ["DEMO_SOURCE", "demo_config", "demo_settings", "refused_flag", "start_demo"]
