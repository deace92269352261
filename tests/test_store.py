"""The history store: migrations, incremental saving, exact round trips, lookups, secrecy."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from ollamakit import store as store_module
from ollamakit.errors import ConfigError, UsageError
from ollamakit.measure.schema import RequestResult, RunDocument
from ollamakit.store import DB_NAME, MIGRATIONS, HistoryStore, redact_secrets, scrub

CANARY = "CANARY-pw-7731"


def result(model: str = "llama3.2:3b", prompt: str = "greeting", i: int = 0, **kw: Any) -> Any:
    r: dict[str, Any] = {
        "model": model,
        "prompt_id": prompt,
        "category": "chat",
        "run_index": i,
        "concurrency": 1,
        "ok": True,
        "error": None,
        "ttft_ms": 212.5 + i,
        "total_ms": 1840.25,
        "load_ms": 11.0,
        "prompt_eval_count": None,  # cached prompt: Ollama omits it
        "prompt_eval_ms": None,
        "eval_count": 200,
        "eval_ms": 1610.0,
        "server_total_ms": 1836.1,
        "prompt_tps": None,
        "eval_tps": 124.22360248447205,
        "tpot_ms": 8.18,
        "e2e_tps": 122.2,
        "network_ms": 4.15,
        "itl_ms": {"p50": 8.0, "p95": 12.5, "p99": 30},
        "done_reason": "length",
        "future_field": {"nested": [1, 2.5, None]},  # an extension this version doesn't know
    }
    r.update(kw)
    return r


def failed(model: str = "llama3.2:3b", i: int = 1) -> Any:
    nulls = dict.fromkeys(
        (
            "ttft_ms",
            "total_ms",
            "load_ms",
            "eval_count",
            "eval_ms",
            "server_total_ms",
            "eval_tps",
            "tpot_ms",
            "e2e_tps",
            "network_ms",
        )
    )
    return result(model, "code", i, ok=False, error="read timeout after 300 s", **nulls)


def document(run_id: str = "20250301-140509-ab12", **kw: Any) -> RunDocument:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id,
        "label": "nightly",
        "status": "running",
        "started_at": "2025-03-01T14:05:09+00:00",
        "finished_at": None,
        "tool": {"name": "ollamakit", "version": "0.1.0"},
        "server": {
            "base_url": "http://gpu.lan:11434",
            "version": "0.6.2",
            "rtt_ms": {"median": 0.9, "p95": 1.4},
        },
        "config": {"runs": 2, "warmup": 1, "concurrency": [1], "num_predict": None},
        "results": [],
        "summary": [],
    }
    doc.update(kw)
    return cast(RunDocument, doc)


def finished(doc: RunDocument, results: list[Any]) -> RunDocument:
    return cast(
        RunDocument,
        {
            **doc,
            "status": "complete",
            "finished_at": "2025-03-01T14:06:00+00:00",
            "results": results,
            "summary": [{"model": "llama3.2:3b", "prompt_id": "greeting", "n": 2, "ok": 2}],
            "concurrency_summary": [
                {"model": "llama3.2:3b", "concurrency": 1, "output_tps": 120.0}
            ],
            "cold_loads": [{"model": "llama3.2:3b", "load_ms": None}],
            "hints": ["a hint"],
        },
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_open_creates_the_database_with_wal_and_migrations_recorded_once(home: Path) -> None:
    with HistoryStore.open(home) as store:
        assert store.path == home / DB_NAME
    with HistoryStore.open(home):
        pass
    db = sqlite3.connect(home / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT name, applied_at FROM _migrations ORDER BY rowid").fetchall()
    assert [name for name, _ in rows] == [fn.__name__ for fn in MIGRATIONS]
    assert all(applied for _, applied in rows)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"runs", "results", "run_models", "_migrations"} <= tables


def test_a_new_migration_is_applied_once_to_an_existing_database(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HistoryStore.open(home) as store:
        store.save_run(finished(document(), [result()]))
    calls: list[str] = []

    def m999_add_note(db: sqlite3.Connection) -> None:
        calls.append("run")
        db.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, m999_add_note])
    for _ in range(3):
        with HistoryStore.open(home) as store:
            assert store.load_run("2025")["results"][0]["model"] == "llama3.2:3b"
    assert calls == ["run"]
    db = sqlite3.connect(home / DB_NAME)
    names = [r[0] for r in db.execute("SELECT name FROM _migrations")]
    assert names.count("m999_add_note") == 1
    assert "note" in [r[1] for r in db.execute("PRAGMA table_info(runs)")]


def test_results_are_readable_by_another_connection_before_the_run_finishes(home: Path) -> None:
    writer = HistoryStore.open(home)
    writer.begin_run(document())
    writer.add_result("20250301-140509-ab12", result(i=0))
    writer.add_result("20250301-140509-ab12", failed())
    # No finish_run, no close: another process must already see both rows.
    raw = sqlite3.connect(home / DB_NAME)
    assert raw.execute("SELECT COUNT(*), SUM(NOT ok) FROM results").fetchone() == (2, 1)
    with HistoryStore.open(home) as reader:
        doc = reader.load_run("20250301-140509-ab12")
        assert doc["status"] == "running"
        assert [r["ok"] for r in doc["results"]] == [True, False]
    writer.close()


def test_a_crashed_writer_loses_nothing_it_added(home: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_store import document, result
        from ollamakit.store import HistoryStore
        store = HistoryStore.open(Path({str(home)!r}))
        store.begin_run(document())
        for i in range(5):
            store.add_result("20250301-140509-ab12", result(i=i))
        os._exit(9)  # killed: no finish_run, no close, no atexit
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with HistoryStore.open(home) as store:
        doc = store.load_run("2025")
        assert doc["status"] == "running"
        assert [r["run_index"] for r in doc["results"]] == [0, 1, 2, 3, 4]
        [listing] = store.list_runs()
        assert (listing.status, listing.n_results, listing.n_failed) == ("running", 5, 0)


def test_two_processes_can_write_at_the_same_time(home: Path) -> None:
    HistoryStore.open(home).close()
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from pathlib import Path
        from test_store import document, result
        from ollamakit.store import HistoryStore
        run_id = sys.argv[3]
        with HistoryStore.open(Path(sys.argv[2])) as store:
            store.begin_run(document(run_id))
            for i in range(60):
                store.add_result(run_id, result(i=i))
        """
    )
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, here, str(home), run_id])
        for run_id in ("run-one", "run-two")
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with HistoryStore.open(home) as store:
        for run_id in ("run-one", "run-two"):
            assert [r["run_index"] for r in store.load_run(run_id)["results"]] == list(range(60))


def test_load_run_rebuilds_the_document_exactly(home: Path) -> None:
    start = document()
    results = [result(i=0), failed(i=1), result("qwen2.5:7b", "zh_tw", 0, ttft_ms=5)]
    final = finished(start, results)
    with HistoryStore.open(home) as store:
        store.begin_run(start)
        for r in results:
            store.add_result(start["run_id"], r)
        store.finish_run(start["run_id"], final)
    with HistoryStore.open(home) as store:
        loaded = store.load_run(start["run_id"])
    assert loaded == final
    # byte for byte: key order, ints stay ints (ttft_ms=5, p99=30), unknown fields kept
    assert orjson.dumps(loaded) == orjson.dumps(final)
    assert loaded["results"][2]["ttft_ms"] == 5 and isinstance(loaded["results"][2]["ttft_ms"], int)


def test_result_columns_are_queryable(home: Path) -> None:
    with HistoryStore.open(home) as store:
        store.save_run(finished(document(), [result(i=0), result(i=1), failed()]))
    db = sqlite3.connect(home / DB_NAME)
    row = db.execute(
        "SELECT COUNT(*), AVG(eval_tps), MAX(itl_p99_ms) FROM results WHERE ok AND model = ?",
        ("llama3.2:3b",),
    ).fetchone()
    assert row[0] == 2 and row[1] == pytest.approx(124.2236) and row[2] == 30
    assert db.execute("SELECT error FROM results WHERE NOT ok").fetchone()[0].startswith("read")


def test_run_id_prefixes_resolve_like_git_short_hashes(home: Path) -> None:
    with HistoryStore.open(home) as store:
        for run_id in ("abc", "abcd1234", "abce5678", "ffff0000"):
            store.save_run(document(run_id))
        assert store.load_run("ffff")["run_id"] == "ffff0000"
        assert store.load_run("abcd")["run_id"] == "abcd1234"
        assert store.load_run("abc")["run_id"] == "abc"  # an exact id wins over prefixes
        with pytest.raises(UsageError, match="abcd1234") as ambiguous:
            store.load_run("ab")
        assert "abce5678" in str(ambiguous.value)
        with pytest.raises(UsageError, match="ollamakit history"):
            store.load_run("0123")
        with pytest.raises(UsageError):
            store.load_run("")


def test_list_runs_newest_first_with_counts_limit_and_model_filter(home: Path) -> None:
    with HistoryStore.open(home) as store:
        assert store.list_runs() == []
        assert store.latest_run_id() is None
        store.save_run(finished(document("r1"), [result(i=0), failed()]))
        store.save_run(finished(document("r2"), [result("qwen2.5:7b", i=0)]))
        store.begin_run(document("r3", config={"models": ["llama3.2:1b"]}))
        runs = store.list_runs()
        assert [r.run_id for r in runs] == ["r3", "r2", "r1"]
        assert store.latest_run_id() == "r3"
        r1 = runs[2]
        assert (r1.n_results, r1.n_failed, r1.models) == (2, 1, ["llama3.2:3b"])
        assert (r1.status, r1.label, r1.base_url) == ("complete", "nightly", "http://gpu.lan:11434")
        assert runs[0].models == ["llama3.2:1b"]  # from the config, before any result
        assert [r.run_id for r in store.list_runs(limit=1)] == ["r3"]
        assert [r.run_id for r in store.list_runs(limit=0)] == ["r3", "r2", "r1"]
        assert [r.run_id for r in store.list_runs(model="qwen2.5:7b")] == ["r2"]
        assert [r.run_id for r in store.list_runs(model="llama3.2")] == ["r3", "r1"]
        assert store.list_runs(model="llama3") == []


def test_add_result_to_an_unknown_run_is_an_error(home: Path) -> None:
    with HistoryStore.open(home) as store, pytest.raises(KeyError):
        store.add_result("nope", cast(RequestResult, result()))


def test_begin_run_twice_is_an_error(home: Path) -> None:
    with HistoryStore.open(home) as store:
        store.begin_run(document())
        with pytest.raises(ValueError, match="already"):
            store.begin_run(document())


def test_an_unusable_home_is_a_config_error(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigError, match="OLLAMAKIT_HOME"):
        HistoryStore.open(not_a_dir)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="history database"):
        HistoryStore.open(garbage)


def test_a_password_never_reaches_the_database_file(home: Path) -> None:
    leaky = document(
        "leaky",
        label=f"against https://admin:{CANARY}@gpu.example.com",
        server={
            "base_url": f"https://ollama-user:{CANARY}@gpu.example.com",
            "version": "0.6.2",
            "rtt_ms": {"median": None, "p95": None},
        },
        config={"runs": 1, "note": f"ollama-user:{CANARY}@gpu.example.com:11434"},
    )
    bad = failed()
    bad["error"] = f"POST https://ollama-user:{CANARY}@gpu.example.com/api/chat: 401"
    final = finished(leaky, [])
    final["hints"] = [f"Authorization: Bearer {CANARY}"]
    with HistoryStore.open(home) as store:
        store.begin_run(leaky)
        store.add_result("leaky", bad)
        store.finish_run("leaky", final)
        loaded = store.load_run("leaky")
    assert loaded["server"]["base_url"] == "https://ollama-user:***@gpu.example.com"
    assert loaded["results"][0]["error"].startswith("POST https://ollama-user:***@gpu")
    for path in home.iterdir():  # the database, its WAL and shared-memory files
        assert CANARY.encode() not in path.read_bytes(), path.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://u:p@h", "https://u:***@h"),
        ("https://u:p%40ss@h:8443/ollama", "https://u:***@h:8443/ollama"),
        ("http://u:pa@ss@h/api", "http://u:***@h/api"),
        ("see (http://u:pw@h) and ftp://a:b@c", "see (http://u:***@h) and ftp://a:***@c"),
        ("u:pw@host.lan:11434", "u:***@host.lan:11434"),
        ("https://user@h", "https://user@h"),
        ("http://localhost:11434/api/chat", "http://localhost:11434/api/chat"),
        ("qwen2.5-coder:7b failed at 12:30:01", "qwen2.5-coder:7b failed at 12:30:01"),
        ("Basic b2xsYW1hOnNlY3JldA==", "Basic ***"),
    ],
)
def test_redact_secrets(text: str, expected: str) -> None:
    assert redact_secrets(text) == expected
    assert redact_secrets(expected) == expected


def test_scrub_walks_nested_documents() -> None:
    value = {"a": [{"b": f"http://x:{CANARY}@h"}], "n": 1.5, "t": True, "z": None}
    assert CANARY not in orjson.dumps(scrub(value)).decode()
    assert scrub(value)["n"] == 1.5


# --- delete and prune (history delete / history prune) -------------------------------------


def _three_runs(home: Path) -> HistoryStore:
    store = HistoryStore.open(home)
    for i, started in enumerate(
        ("2025-01-01T00:00:00+00:00", "2025-06-01T00:00:00+00:00", "2026-11-30T00:00:00+00:00")
    ):
        store.save_run(
            finished(document(f"run{i}", started_at=started), [result("llama3.2:3b", "g", 0)])
        )
    return store


def test_delete_runs_removes_their_results_and_resolves_prefixes(home: Path) -> None:
    store = _three_runs(home)
    assert store.delete_runs(["run0", "run1"]) == ["run0", "run1"]
    assert [r.run_id for r in store.list_runs()] == ["run2"]
    count = store._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert count == 1
    with pytest.raises(UsageError):
        store.delete_runs(["run2", "nope"])  # one unknown id: nothing deleted
    assert [r.run_id for r in store.list_runs()] == ["run2"]
    store.close()


def test_prune_candidates_keep_and_age(home: Path) -> None:
    from datetime import UTC, datetime

    store = _three_runs(home)
    assert [r.run_id for r in store.prune_candidates(keep=1)] == ["run1", "run0"]
    cutoff = datetime(2025, 3, 1, tzinfo=UTC)
    assert [r.run_id for r in store.prune_candidates(older_than=cutoff)] == ["run0"]
    assert [r.run_id for r in store.prune_candidates(keep=2, older_than=cutoff)] == ["run0"]
    assert store.prune_candidates() == []
    store.close()


def test_history_delete_and_prune_commands(isolated_env: Path) -> None:
    from tests.support import run_program

    _three_runs(isolated_env).close()
    refused = run_program(["history", "delete", "run0"])  # no terminal, no --yes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    deleted = run_program(["history", "delete", "run0", "--yes"])
    assert deleted.returncode == 0, deleted.output
    pruned = run_program(["history", "prune", "--keep", "1", "--yes"])
    assert pruned.returncode == 0 and "Deleted 1 runs" in pruned.stderr
    with HistoryStore.open(isolated_env) as store:
        assert [r.run_id for r in store.list_runs()] == ["run2"]
    assert run_program(["history", "prune"]).returncode == 2
