"""The real-engine tier: llama.cpp's ``llama-server`` with SmolLM2-135M, real tokens, no mocks.

How it runs
-----------
Every test here carries the ``engine`` marker, and the project's pytest ``addopts`` deselect it
(``-m "not engine"``), so the main suite (``uv run pytest``) never builds or starts anything
here. The tier is run by ``tests/engine/run_tier.sh`` (``.ci/run`` starts it in the background
while the main suite runs)::

    tests/engine/run_tier.sh          # build or reuse the cache, then the tests (-m engine)

``run_tier.sh`` calls ``build_engine.sh`` *outside* pytest (a cold build takes 13-46 minutes,
far beyond any per-test timeout) and hands the two paths over in ``OLLAMAKIT_ENGINE_SERVER``
and ``OLLAMAKIT_ENGINE_MODEL``. Run directly (``uv run pytest tests/engine -m engine``), the
fixture asks ``build_engine.sh --cached-only`` for the cached paths and skips with the command
to run when nothing is built yet: it never starts a build inside a test.

The fixture
-----------
:func:`engine` (session scope) starts one ``llama-server -m MODEL --host 127.0.0.1 --port P
-c 4096 -np 1 -t 1 --alias smollm2-135m --metrics`` on a free loopback port, polls ``/health``
until the model is loaded (bounded: :data:`START_TIMEOUT_S`), yields an :class:`Engine` and
stops it (SIGTERM, then SIGKILL). ``-t 1``: with two threads any other busy process on a
2-core machine makes decode speed erratic (1.6-79 tok/s); one thread stays within ~1.5x.
Every test stays bounded by pytest-timeout (the project default, tighter where marked).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# nginx + trustme CA fixtures, exactly as the deploy tests set them up.
from tests.deploy.conftest import nginx_binary, pki, start_nginx
from tests.engine.harness import Engine, EngineFiles, free_port, locate_engine


@pytest.fixture(scope="session")
def engine_files() -> EngineFiles:
    files = locate_engine()
    if files is None:
        pytest.skip("llama-server is not built yet: run tests/engine/run_tier.sh (13-46 min once)")
    return files


@pytest.fixture(scope="session")
def engine(engine_files: EngineFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A running llama-server with SmolLM2-135M (alias ``smollm2-135m``), one thread."""
    folder = tmp_path_factory.mktemp("llama-server")
    server = Engine(engine_files, free_port(), folder / "server.log").start()
    yield server
    server.stop()


__all__ = ["engine", "engine_files", "nginx_binary", "pki", "start_nginx"]
