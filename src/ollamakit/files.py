"""Private files under ``OLLAMAKIT_HOME``: directories ``0700``, files ``0600``.

Everything the tools keep there is private: the benchmark history (server URLs, prompts,
error texts), the chat transcripts and the line-editor history (what the user typed). So
every directory this program creates is made ``0700`` and every file ``0600``, whatever the
umask; a file left ``0644`` by an older version is tightened when it is next opened.

A directory the user already had (``OLLAMAKIT_HOME=~/data``) keeps its mode: changing the
permissions of a folder we did not create would surprise more than it protects. The files we
put into it are still ``0600``.

SQLite creates ``-wal`` and ``-shm`` with the permissions of the database file, so a database
created here at ``0600`` gets private companions too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as ``0700``; return it.

    Raises :class:`OSError` (read-only file system, a file in the way ...) for the caller to
    turn into a message.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent process made it first
            folder.mkdir(mode=DIR_MODE)
        os.chmod(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    if not path.is_dir():
        raise NotADirectoryError(20, os.strerror(20), str(path))
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and is ``0600`` (its folder is created private); return it."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file"]
