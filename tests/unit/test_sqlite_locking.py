"""SQLite as the embedded default: web, gateway, worker and cron are separate processes on one file.

A savepoint that opens the transaction used to take only a read lock, so a write after another process's
commit failed at once with "database is locked" (seen in CI: a member's start answered 500 while the
worker was recording a partner push). The savepoint now begins the transaction with the write lock, and
another writer waits its turn."""
from __future__ import annotations

import sqlite3
import threading
import time

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

import app.extensions  # noqa: F401  (registers the engine events)


def _engine(path):
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
        conn.execute(text("INSERT INTO t (who) VALUES ('seed')"))
    return engine


def test_every_sqlite_connection_uses_wal_a_long_busy_timeout_and_foreign_keys(tmp_path):
    engine = _engine(tmp_path / "a.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_savepoint_that_opens_the_transaction_holds_the_write_lock(tmp_path):
    engine = _engine(tmp_path / "b.db")
    session = Session(engine)
    session.execute(text("SELECT count(*) FROM t")).scalar()
    with session.begin_nested():
        session.execute(text("SELECT count(*) FROM t")).scalar()
        other = sqlite3.connect(tmp_path / "b.db", timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            raise AssertionError("another connection got the write lock during the savepoint")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
        finally:
            other.close()
    session.rollback()
    session.close()


def test_a_write_after_reads_in_a_savepoint_waits_for_no_one_and_the_other_writer_waits(tmp_path):
    """Session A reads inside a savepoint; process B writes meanwhile; A then writes. Before the fix,
    B committed first and A's write failed at once ("database is locked"); now B waits for A."""
    path = tmp_path / "c.db"
    engine = _engine(path)
    session = Session(engine)
    session.execute(text("SELECT count(*) FROM t")).scalar()          # the request's first reads
    results = {}

    def other_process_writes():
        conn = sqlite3.connect(path, timeout=30)
        try:
            conn.execute("INSERT INTO t (who) VALUES ('b')")
            conn.commit()
            results["b"] = "committed"
        except sqlite3.OperationalError as exc:       # pragma: no cover - the failure this test guards
            results["b"] = str(exc)
        finally:
            conn.close()

    with session.begin_nested():
        assert session.execute(text("SELECT count(*) FROM t")).scalar() == 1
        writer = threading.Thread(target=other_process_writes)
        writer.start()
        time.sleep(0.3)                                                  # B would have committed by now
        assert "b" not in results                                        # B waits for A's write lock
        session.execute(text("INSERT INTO t (who) VALUES ('a')"))
    session.commit()
    session.close()
    writer.join(30)
    assert results["b"] == "committed"
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT who FROM t")).scalars()) == ["a", "b", "seed"]
