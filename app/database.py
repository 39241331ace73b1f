"""Engine setup and the write transaction every service uses."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Iterator

from flask import Flask, has_app_context
from sqlalchemy import event

from app.extensions import db
from app.runtime import now as runtime_now, system_utcnow

# Execution option naming how SQLite should BEGIN the transaction of a connection.
SQLITE_BEGIN = "waybill_sqlite_begin"
# Session flag: a write transaction is open, so nested blocks join it.
IN_WRITE = "waybill_in_write_transaction"


def utcnow() -> datetime:
    """The current UTC time without tzinfo, from the app's clock (a test may set it)."""
    return runtime_now() if has_app_context() else system_utcnow()


def configure_engine(app: Flask) -> None:
    """Put SQLite in WAL mode with a busy timeout and let write transactions BEGIN IMMEDIATE."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        return
    busy_ms = int(app.config["WAYBILL_SQLITE_BUSY_TIMEOUT_S"] * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # pysqlite's own transaction handling would BEGIN lazily and DEFERRED; we issue BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction() -> Iterator[None]:
    """Run a block as one transaction that holds the write lock from its first statement.

    Blocks nest: an inner one joins the outer transaction, so services compose atomically.

    On SQLite this is BEGIN IMMEDIATE, so two writers queue on the busy timeout instead of
    one failing with "database is locked" when it upgrades a read snapshot. On PostgreSQL
    row locks taken by the guarded statements do the same job.
    """
    session = db.session
    if session.info.get(IN_WRITE):
        yield  # nested: the outer block commits everything at once
        return
    # End any read transaction first: its snapshot could not be upgraded to a write lock.
    if session().in_transaction():
        session.commit()
    session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
    session.info[IN_WRITE] = True
    try:
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(IN_WRITE, None)


def execute(statement, parameters=None):
    """Run a Core statement on the session's connection, skipping the ORM's execute layer.

    For the request hot path: the ORM's per-statement bookkeeping costs more than the SQL.
    """
    return db.session.connection().execute(statement, parameters)
