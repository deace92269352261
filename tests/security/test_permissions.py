"""Everything under ``OLLAMAKIT_HOME`` is private: directories 0700, files 0600, whatever the
umask, for a home the program creates (the default case) — the history database and its
``-wal``/``-shm``, the chat transcripts and the line editor's ``chat_history``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ollamakit.files import private_dir, private_file
from ollamakit.sim import ThreadedSim
from ollamakit.store import HistoryStore
from tests.support import run_program


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The most common umask (022): what made files 0644 before."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(home: Path) -> dict[str, str]:
    found = {".": oct(stat.S_IMODE(home.stat().st_mode))}
    for path in home.rglob("*"):
        found[str(path.relative_to(home))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def _assert_private(home: Path) -> None:
    modes = _modes(home)
    for name, mode in modes.items():
        wanted = "0o700" if (home / name).is_dir() else "0o600"
        assert mode == wanted, f"{name} is {mode}: {modes}"


def test_chat_and_bench_keep_everything_private(
    tmp_path: Path, start_sim: Callable[..., ThreadedSim], suite_file: Path
) -> None:
    url = start_sim().url
    home = tmp_path / "new" / "home"  # neither exists yet
    env = {"OLLAMAKIT_HOME": str(home)}
    chat = run_program(["chat", "--base-url", url, "--model", "quick:1b"], env=env, input="hi\n")
    assert chat.returncode == 0, chat.output
    bench = ["bench", "--auto", "--base-url", url, "--runs", "1", "--suite", str(suite_file)]
    assert run_program(bench, env=env).returncode == 0
    assert (home / "history.sqlite3").is_file()
    assert list((home / "transcripts").glob("*.jsonl"))
    _assert_private(home)
    assert oct(stat.S_IMODE((tmp_path / "new").stat().st_mode)) == "0o700"


def test_the_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = HistoryStore.open(home)
    try:
        store.begin_run({"run_id": "r1", "status": "running", "results": []})  # type: ignore[typeddict-item]
        assert (home / "history.sqlite3-wal").exists()  # while it is open
        _assert_private(home)
    finally:
        store.close()


def test_files_left_world_readable_are_tightened(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    old = home / "history.sqlite3"
    old.touch(mode=0o644)
    HistoryStore.open(home).close()
    assert oct(stat.S_IMODE(old.stat().st_mode)) == "0o600"
    history = private_file(home / "chat_history")
    assert oct(stat.S_IMODE(history.stat().st_mode)) == "0o600"
    history.chmod(0o644)
    private_file(history)
    assert oct(stat.S_IMODE(history.stat().st_mode)) == "0o600"
    # A folder the user already had keeps its mode; new ones inside it are private.
    assert oct(stat.S_IMODE(home.stat().st_mode)) == "0o755"
    assert oct(stat.S_IMODE(private_dir(home / "a" / "b").stat().st_mode)) == "0o700"
    assert oct(stat.S_IMODE((home / "a").stat().st_mode)) == "0o700"


def test_the_chat_line_editor_history_is_private(tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from ollamakit.chat.prompt import PromptInput

    path = tmp_path / "home" / "chat_history"
    with create_pipe_input() as pipe:
        from prompt_toolkit.application.current import create_app_session

        with create_app_session(input=pipe, output=DummyOutput()):
            PromptInput(path, list)
    assert path.is_file()
    _assert_private(tmp_path / "home")
