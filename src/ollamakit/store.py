"""The history database: every benchmark run and every request, saved the moment it finishes.

Design
------
One SQLite file, ``OLLAMAKIT_HOME/history.sqlite3``, written through :class:`HistoryStore`::

    store = HistoryStore.open(settings.home)
    store.begin_run(doc)                 # status "running", no results yet
    store.add_result(run_id, result)     # one row per request, committed at once
    store.finish_run(run_id, doc)        # status, finished_at, summary, hints ...
    store.load_run("3f9a")               # the whole RunDocument again (prefixes accepted)

Tables (created by the migrations below)::

    runs        id, run_id UNIQUE, label, status, started_at, finished_at, base_url,
                server_version, rtt_median_ms, rtt_p95_ms, tool_version, header_json
    results     id, run_id -> runs, model, prompt_id, category, run_index, concurrency, ok,
                error, ttft_ms ... network_ms, itl_p50_ms, itl_p95_ms, itl_p99_ms,
                started_at, result_json
    run_models  id, run_id -> runs, model (UNIQUE per run): what ``--model`` filters on
    _migrations name, applied_at: which migration functions have run

*The JSON columns are the truth, the other columns an index.* ``header_json`` is the document
without its results, ``result_json`` one :class:`RequestResult` exactly as the runner made it;
:meth:`HistoryStore.load_run` rebuilds the document from them, so it compares equal to what
was saved (key order, ints vs floats, extension keys the schema does not know yet). The typed
columns are a copy made for SQL, e.g.
``sqlite3 history.sqlite3 "select model, avg(eval_tps) from results where ok group by model"``.

Migrations follow simonw/llm's ``migrations.py``: an ordered list of functions, each applied
once and recorded by name in ``_migrations``. Never edit a released migration; append a new one.

Concurrency and crashes: WAL mode (readers never block the writer), a busy timeout, and every
write its own ``BEGIN IMMEDIATE`` transaction, so two processes (a benchmark running while
``ollamakit history`` reads, or two benchmarks) can share the file. ``add_result`` commits
before it returns: a crash or Ctrl-C loses at most the requests still in flight, and the run
stays visible with status ``running``. ``synchronous=NORMAL`` survives a killed process; only
a power cut may drop the last few commits.

Credentials: the producer already redacts ``server.base_url``, but the store does not rely on
it. Every string of every document and result passes through :func:`scrub` before it is
written, which masks the password of anything URL-shaped (and ``Bearer``/``Basic`` tokens),
so a password that slipped into an error text or a label never reaches the file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

import orjson

from ollamakit.errors import ConfigError, OllamakitError, UsageError
from ollamakit.files import FILE_MODE, private_file
from ollamakit.i18n import t
from ollamakit.measure.schema import (
    RESULT_SCALAR_FIELDS,
    RequestResult,
    RunDocument,
    planned_requests,
)
from ollamakit.redact import redact, scrub

DB_NAME: Final = "history.sqlite3"
BUSY_TIMEOUT_S: Final = 30.0

# ---------------------------------------------------------------------------------------------
# Credentials: masked by ollamakit.redact (the one place); ``scrub`` is used below.

redact_secrets = redact


# ---------------------------------------------------------------------------------------------
# Migrations (simonw/llm style): append only, never edit one that has shipped.

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    # One statement per execute(): executescript() would COMMIT the migration transaction.
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL UNIQUE,
            label TEXT,
            status TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            base_url TEXT NOT NULL,
            server_version TEXT,
            rtt_median_ms REAL,
            rtt_p95_ms REAL,
            tool_version TEXT,
            header_json TEXT NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE results (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            prompt_id TEXT NOT NULL,
            category TEXT,
            run_index INTEGER,
            concurrency INTEGER,
            ok INTEGER NOT NULL,
            error TEXT,
            ttft_ms REAL,
            total_ms REAL,
            load_ms REAL,
            prompt_eval_count INTEGER,
            prompt_eval_ms REAL,
            eval_count INTEGER,
            eval_ms REAL,
            server_total_ms REAL,
            prompt_tps REAL,
            eval_tps REAL,
            tpot_ms REAL,
            e2e_tps REAL,
            network_ms REAL,
            itl_p50_ms REAL,
            itl_p95_ms REAL,
            itl_p99_ms REAL,
            started_at TEXT,
            result_json TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX results_run ON results(run_id, id)")
    db.execute("CREATE INDEX results_model ON results(model)")
    db.execute(
        """CREATE TABLE run_models (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            UNIQUE (run_id, model)
        )"""
    )
    db.execute("CREATE INDEX run_models_model ON run_models(model)")


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded in ``_migrations``; return their names."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    if all(fn.__name__ in done for fn in MIGRATIONS):
        return []
    applied: list[str] = []
    db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
    try:
        done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                continue
            fn(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (fn.__name__, _now()),
            )
            applied.append(fn.__name__)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return applied


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# The store


@dataclass(frozen=True, slots=True)
class RunListing:
    """One line of ``ollamakit history``."""

    run_id: str
    label: str | None
    started_at: str
    status: str
    base_url: str
    n_results: int
    n_failed: int
    models: list[str] = field(default_factory=list)
    finished_at: str | None = None
    server_version: str | None = None
    #: measured requests the plan held (None: the header does not say); with ``models_ran``
    #: (the models that have results) it tells how far an interrupted run got
    planned: int | None = None
    models_ran: list[str] = field(default_factory=list)
    demo: bool = False  # a --demo run: the built-in simulator, simulated numbers


_RESULT_COLUMNS: Final = (*RESULT_SCALAR_FIELDS, "started_at")


def _number(value: object) -> float | int | None:
    """A column value for a REAL/INTEGER column: numbers only (bool is not a measurement)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _result_row(run_id: str, result: dict[str, Any]) -> tuple[object, ...]:
    itl = result.get("itl_ms") if isinstance(result.get("itl_ms"), dict) else {}
    assert isinstance(itl, dict)
    values: list[object] = [run_id]
    for name in _RESULT_COLUMNS:
        value = result.get(name)
        if name == "ok":
            values.append(1 if value is True else 0)
        elif name in ("model", "prompt_id"):
            values.append(str(value) if value is not None else "")
        elif name in ("category", "error", "started_at"):
            values.append(_text(value))
        else:
            values.append(_number(value))
    values += [_number(itl.get("p50")), _number(itl.get("p95")), _number(itl.get("p99"))]
    values.append(_dumps(result))
    return tuple(values)


_INSERT_RESULT: Final = (
    "INSERT INTO results (run_id, "
    + ", ".join(_RESULT_COLUMNS)
    + ", itl_p50_ms, itl_p95_ms, itl_p99_ms, result_json) VALUES ("
    + ", ".join("?" * (len(_RESULT_COLUMNS) + 5))
    + ")"
)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class HistoryStore:
    """The history database. Thread-safe; open one per process and close it (or use ``with``)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._lock = threading.RLock()
        self.path = path

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, home: Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> HistoryStore:
        """Open (creating if needed) ``home/history.sqlite3`` and bring its schema up to date.

        ``busy_timeout_s``: how long a write waits for another process's lock before it fails.
        """
        path = Path(home) / DB_NAME
        try:
            private_file(path)  # 0600 in a 0700 folder; SQLite gives -wal/-shm the same mode
            for companion in (
                path.with_name(f"{path.name}-wal"),
                path.with_name(f"{path.name}-shm"),
            ):
                if companion.exists():  # left 0644 by an older version
                    companion.chmod(FILE_MODE)
            db = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise _home_error(path, exc) from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db)
        except sqlite3.Error as exc:
            db.close()
            raise _home_error(path, exc) from None
        return cls(db, path)

    @staticmethod
    def exists(home: Path) -> bool:
        """Whether a history database exists (readers use it to avoid creating an empty one)."""
        return (Path(home) / DB_NAME).is_file()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken up front (no upgrade deadlocks).

        A database that cannot be written (disk full, locked past the busy timeout, a file
        system gone read-only) raises :class:`HistoryWriteError`; the transaction is rolled
        back, so the file holds either all of a write or none of it.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise HistoryWriteError(path=str(self.path), error=str(exc)) from None

    # -- writing -------------------------------------------------------------------------------

    def begin_run(self, doc: RunDocument) -> None:
        """Record a new run (normally ``status: "running"`` and no results yet).

        Results already in ``doc`` are stored too, so a finished document can be saved in one
        call (see :meth:`save_run`).
        """
        clean = scrub(cast(dict[str, Any], doc))
        run_id = str(clean["run_id"])
        with self._write() as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise ValueError(f"run {run_id!r} is already in the history")
            db.execute(
                """INSERT INTO runs (run_id, label, status, started_at, finished_at, base_url,
                    server_version, rtt_median_ms, rtt_p95_ms, tool_version, header_json)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (run_id, *_run_columns(clean)),
            )
            self._add_models(db, run_id, clean)
            for result in clean.get("results") or []:
                self._insert_result(db, run_id, result)

    def add_result(self, run_id: str, result: RequestResult) -> None:
        """Append one request's result and commit it before returning."""
        clean = scrub(cast(dict[str, Any], result))
        with self._write() as db:
            if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise KeyError(f"no run {run_id!r} in the history (call begin_run first)")
            self._insert_result(db, run_id, clean)

    def finish_run(self, run_id: str, doc: RunDocument) -> None:
        """Store the final header: status, finished_at, summary, concurrency_summary, hints ...

        ``doc["results"]`` is ignored: the rows are those given to :meth:`add_result`.
        """
        clean = scrub(cast(dict[str, Any], doc))
        with self._write() as db:
            cursor = db.execute(
                """UPDATE runs SET label = ?, status = ?, started_at = ?, finished_at = ?,
                    base_url = ?, server_version = ?, rtt_median_ms = ?, rtt_p95_ms = ?,
                    tool_version = ?, header_json = ? WHERE run_id = ?""",
                (*_run_columns(clean), run_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"no run {run_id!r} in the history (call begin_run first)")
            self._add_models(db, run_id, clean)

    def delete_results(self, run_id: str, cells: list[tuple[str, str, int, int]]) -> int:
        """Delete a run's results by (model, prompt_id, run_index, concurrency); rows deleted.

        ``bench --resume`` drops the part of a batch that was cut short: it is measured again.
        """
        with self._write() as db:
            deleted = 0
            for model, prompt_id, run_index, concurrency in cells:
                cursor = db.execute(
                    """DELETE FROM results WHERE run_id = ? AND model = ? AND prompt_id = ?
                        AND run_index = ? AND concurrency = ?""",
                    (run_id, model, prompt_id, run_index, concurrency),
                )
                deleted += cursor.rowcount
        return deleted

    def save_run(self, doc: RunDocument) -> None:
        """Store a complete document (header and results) in one transaction."""
        self.begin_run(doc)

    def delete_run(self, run_id: str) -> None:
        run_id = self.resolve(run_id)
        with self._write() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def delete_runs(self, run_ids: list[str]) -> list[str]:
        """Delete several runs (ids or unambiguous prefixes) in one transaction; their full ids.

        Every id is resolved first, so one unknown id deletes nothing.
        """
        full = list(dict.fromkeys(self.resolve(r) for r in run_ids))
        with self._write() as db:
            for run_id in full:
                db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
        return full

    def prune_candidates(
        self, *, keep: int | None = None, older_than: datetime | None = None
    ) -> list[RunListing]:
        """The runs ``history prune`` would delete: beyond the newest ``keep``, and/or started
        before ``older_than`` (both given: a run must match both to go). Newest first.
        """
        runs = self.list_runs(limit=0)
        chosen: list[RunListing] = []
        for index, run in enumerate(runs):
            beyond = keep is None or index >= keep
            old = older_than is None or _parse_time(run.started_at) < older_than
            if beyond and old and (keep is not None or older_than is not None):
                chosen.append(run)
        return chosen

    @staticmethod
    def _insert_result(db: sqlite3.Connection, run_id: str, result: dict[str, Any]) -> None:
        db.execute(_INSERT_RESULT, _result_row(run_id, result))
        if isinstance(result.get("model"), str):
            db.execute(
                "INSERT OR IGNORE INTO run_models (run_id, model) VALUES (?, ?)",
                (run_id, result["model"]),
            )

    @staticmethod
    def _add_models(db: sqlite3.Connection, run_id: str, doc: dict[str, Any]) -> None:
        config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
        models = config.get("models") if isinstance(config, dict) else None
        for model in models if isinstance(models, list) else []:
            if isinstance(model, str):
                db.execute(
                    "INSERT OR IGNORE INTO run_models (run_id, model) VALUES (?, ?)",
                    (run_id, model),
                )

    # -- reading -------------------------------------------------------------------------------

    def resolve(self, run_id: str) -> str:
        """The full id of a run given its id or an unambiguous prefix (like git short hashes)."""
        prefix = run_id.strip()
        with self._lock:
            if not prefix:
                raise UsageError(t("report.unknown_run", run_id=run_id))
            exact = self._db.execute("SELECT run_id FROM runs WHERE run_id = ?", (prefix,))
            if exact.fetchone():
                return prefix
            rows = self._db.execute(
                "SELECT run_id FROM runs WHERE substr(run_id, 1, ?) = ? ORDER BY id DESC LIMIT 6",
                (len(prefix), prefix),
            ).fetchall()
        if not rows:
            raise UsageError(t("report.unknown_run", run_id=prefix))
        if len(rows) > 1:
            candidates = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise UsageError(t("report.ambiguous_run", run_id=prefix, candidates=candidates))
        return str(rows[0][0])

    def load_run(self, run_id: str) -> RunDocument:
        """The document of a run, rebuilt exactly as it was saved (with every result so far)."""
        full_id = self.resolve(run_id)
        with self._lock:
            row = self._db.execute(
                "SELECT header_json, status, finished_at FROM runs WHERE run_id = ?", (full_id,)
            ).fetchone()
            results = [
                orjson.loads(r[0])
                for r in self._db.execute(
                    "SELECT result_json FROM results WHERE run_id = ? ORDER BY id", (full_id,)
                )
            ]
        doc: dict[str, Any] = orjson.loads(row[0])
        doc["results"] = results  # keeps the key where the header had it
        return cast(RunDocument, doc)

    def latest_run_id(self) -> str | None:
        """The id of the most recently started run, or None when the history is empty."""
        with self._lock:
            row = self._db.execute("SELECT run_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def list_runs(self, limit: int = 20, model: str | None = None) -> list[RunListing]:
        """The newest runs first, at most ``limit`` (0: all).

        ``model`` matches a name exactly, or every tag of a bare name (``llama3.2`` matches
        ``llama3.2:1b`` and ``llama3.2:latest``).
        """
        where = ""
        params: list[object] = []
        if model:
            where = (
                "WHERE EXISTS (SELECT 1 FROM run_models m WHERE m.run_id = r.run_id"
                " AND (m.model = ? OR (? AND substr(m.model, 1, ?) = ?)))"
            )
            bare = ":" not in model
            params += [model, int(bare), len(model) + 1, f"{model}:"]
        params.append(limit if limit > 0 else -1)  # SQLite: LIMIT -1 means no limit
        sql = f"""
            SELECT r.run_id, r.label, r.started_at, r.status, r.base_url, r.finished_at,
                r.server_version,
                (SELECT COUNT(*) FROM results x WHERE x.run_id = r.run_id),
                (SELECT COUNT(*) FROM results x WHERE x.run_id = r.run_id AND NOT x.ok),
                (SELECT group_concat(model, char(10)) FROM
                    (SELECT model FROM run_models m WHERE m.run_id = r.run_id ORDER BY m.id)),
                (SELECT group_concat(model, char(10)) FROM
                    (SELECT DISTINCT model FROM results x WHERE x.run_id = r.run_id)),
                r.header_json
            FROM runs r {where} ORDER BY r.id DESC LIMIT ?"""
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [
            RunListing(
                run_id=row[0],
                label=row[1],
                started_at=row[2],
                status=row[3],
                base_url=row[4],
                finished_at=row[5],
                server_version=row[6],
                n_results=int(row[7]),
                n_failed=int(row[8]),
                models=row[9].split("\n") if row[9] else [],
                models_ran=row[10].split("\n") if row[10] else [],
                **_listing_extras(row[11]),
            )
            for row in rows
        ]


def _listing_extras(header_json: str) -> dict[str, Any]:
    """``planned`` and ``demo`` of a listing, from the run's saved header."""
    try:
        header = _dict(orjson.loads(header_json))
    except orjson.JSONDecodeError:
        return {}
    return {
        "planned": planned_requests(_dict(header.get("config"))),
        "demo": header.get("demo") is True,
    }


def _run_columns(doc: dict[str, Any]) -> tuple[object, ...]:
    """The ``runs`` columns after ``run_id``, from a (scrubbed) document."""
    server = _dict(doc.get("server"))
    rtt = _dict(server.get("rtt_ms"))
    tool = _dict(doc.get("tool"))
    header = {k: ([] if k == "results" else v) for k, v in doc.items()}
    header.setdefault("results", [])
    return (
        _text(doc.get("label")),
        str(doc.get("status") or "running"),
        str(doc.get("started_at") or _now()),
        _text(doc.get("finished_at")),
        str(server.get("base_url") or ""),
        _text(server.get("version")),
        _number(rtt.get("median")),
        _number(rtt.get("p95")),
        _text(tool.get("version")),
        _dumps(header),
    )


def _parse_time(iso: str) -> datetime:
    """A stored ``started_at``; naive times are taken as UTC, unparsable ones as very old."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _dict(value: object) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


class HistoryWriteError(OllamakitError):
    """The history database could not be written (disk full, locked, read-only)."""

    key = "files.history_write_failed"

    def __init__(self, *, path: str, error: str) -> None:
        super().__init__(error)
        self.params.update(path=path, error=error)


def _home_error(path: Path, exc: BaseException) -> ConfigError:
    return ConfigError(
        t("report.store_unusable", path=str(path), error=str(exc)),
        key="OLLAMAKIT_HOME",
        value=str(path.parent),
        example="~/.local/share/ollamakit",
    )
