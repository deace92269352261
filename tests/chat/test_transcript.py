"""The JSONL transcript: one line per event, on disk at once, private."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

from ollamakit.chat.transcript import Transcript, read_events


def test_events_are_on_disk_as_soon_as_written(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5)
    log = Transcript.create(tmp_path, "hf.co/x/Model:Q4", when=when)
    assert log.path.name == "chat-20260102-030405-hf.co_x_Model-Q4.jsonl"
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    log.start(server="http://h:1", model="m", system=None, options={}, think=None)
    log.write("user", content="héllo\nworld")
    # Read while the writer is still open: nothing waits in a buffer.
    events = read_events(log.path)
    assert [e["event"] for e in events] == ["start", "user"]
    assert events[1]["content"] == "héllo\nworld"
    assert events[0]["format"] == 1 and "ts" in events[0]
    log.close()
    log.write("late")  # after close: ignored, not a crash
    assert len(read_events(log.path)) == 2


def test_two_sessions_in_the_same_second_get_two_files(tmp_path: Path) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5)
    a = Transcript.create(tmp_path, "m", when=when)
    b = Transcript.create(tmp_path, "m", when=when)
    assert a.path != b.path
    a.close()
    b.close()
