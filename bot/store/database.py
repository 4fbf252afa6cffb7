"""Engine and transactions for SQLite and PostgreSQL.

Why ``BEGIN IMMEDIATE`` on SQLite: a deferred transaction that reads, then writes, can
fail with "database is locked" when another writer slipped in between; taking the write
lock up front makes every opsbot transaction serializable and the retries unnecessary.
Why ``pool_pre_ping``: a PostgreSQL restart must cost one failed check, not a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import DatabaseUnreachable
from bot.redaction import redact_known_secret, redact_text

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
RETRY_FIRST_PAUSE_SECONDS = 0.1
RETRY_MAX_PAUSE_SECONDS = 2.0
T = TypeVar("T")
AUDIT_KEY_INFO = "opsbot_audit_key"
"""``Session.info`` key of the audit chain's HMAC key: every append site gets it through its session, none passes it."""


class Database:
    """One engine per process; ``transaction()`` is the only way the code writes."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False, audit_key: bytes | None = None) -> None:
        self.url = url
        parsed = _supported_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, echo=echo, immediate=True)
            # Readers (verify, export, tail) must not take SQLite's write lock: WAL lets them run beside writers.
            self.read_engine = _sqlite_engine(url, echo=echo, immediate=False)
        else:
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_recycle=1_800,
                # Every session ends in COMMIT or ROLLBACK (transaction()/reading()), so the pool's extra
                # ROLLBACK on return is a wasted round trip on every transaction.
                pool_reset_on_return=None,
                echo=echo,
            )
            self.read_engine = self.engine
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False, autoflush=False, info={AUDIT_KEY_INFO: audit_key})
        self._read_sessions = sessionmaker(bind=self.read_engine, expire_on_commit=False, autoflush=False)

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        finally:
            session.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; on SQLite it never blocks writers."""
        session = self._read_sessions()
        try:
            # Ends with a (read-only) commit: a rollback would expire the rows we hand back.
            with session.begin():
                yield session
        finally:
            session.close()

    def retry_while_unreachable(self, what: str, call: Callable[[], T], *, for_seconds: float) -> T:
        """``call()`` (a whole transaction), tried again while the database cannot be reached.

        A restart or failover kills every connection and refuses new ones for a few seconds;
        ``pool_pre_ping`` replaces dead connections, this waits out the refusals. Any other error,
        and a database still unreachable after ``for_seconds``, is raised.
        """
        deadline = time.monotonic() + for_seconds
        pause = RETRY_FIRST_PAUSE_SECONDS
        while True:
            try:
                return call()
            except DBAPIError as error:
                if not is_unreachable(error) or time.monotonic() + pause > deadline:
                    raise
                logger.warning("could not %s: the database is unreachable (%s); retrying in %.1f s", what, type(error.orig).__name__, pause)
            time.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_PAUSE_SECONDS)

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query (used by /readyz)."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def missing_file(self) -> str | None:
        """For SQLite: why the database file is unusable (removed, not writable), else None.

        A removed SQLite file would be silently recreated empty by the next connection, and
        pooled connections keep answering from the deleted file's inode, so ``ping`` alone
        cannot tell: ``/readyz`` asks this first.
        """
        parsed = make_url(self.url)
        if self.dialect != "sqlite" or not parsed.database:
            return None
        path = Path(parsed.database)
        if not path.exists():
            return f"SQLite file {path} is missing"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"SQLite file {path} is not readable and writable by this process"
        return None

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


SUPPORTED_URLS = "sqlite:///path/opsbot.db or postgresql+psycopg://user:password@host:5432/dbname"


def unreachable_message(error: BaseException, url: str) -> str | None:
    """One line saying why the database at ``url`` could not be used, or None for any other error.

    Command-line tools print this instead of a traceback; the password in ``url`` (or any piece
    of it a parser split off at an '@') never appears in it.
    """
    if isinstance(error, DatabaseUnreachable):
        return error.user_message
    if isinstance(error, OperationalError | InterfaceError) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        original = error.orig if error.orig is not None else error
        missing = _missing_sqlite_directory(url)
        if isinstance(original, sqlite3.OperationalError) and missing is not None:
            return f"the SQLite file's directory {missing} does not exist; create it or change OPSBOT_DATABASE_URL"
        lines = str(original).strip().splitlines()
        text = f"{type(original).__name__}: {lines[0][:200]}" if lines else type(original).__name__
        return f"cannot reach the database ({redact_text(redact_known_secret(text, _password(url)))})"
    return None


def _supported_url(url: str) -> URL:
    """The parsed URL, or ``DatabaseUnreachable`` naming the URLs opsbot supports."""
    shown = redact_text(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise DatabaseUnreachable(f"{shown!r} is not a database URL; use {SUPPORTED_URLS}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise DatabaseUnreachable(f"unsupported database URL {shown!r}; opsbot supports {SUPPORTED_URLS}")
    if parsed.host and "@" in parsed.host:
        raise DatabaseUnreachable("the database URL has an '@' in its password: write it as %40 (URL-encode the password)")
    return parsed


def _missing_sqlite_directory(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    directory = Path(parsed.database).parent
    return None if directory.is_dir() else directory


def _password(url: str) -> str:
    """The password as written in the URL, up to the last '@' (which is where a parser may cut it)."""
    _, separator, rest = url.partition("://")
    credentials = rest.rsplit("@", 1)[0] if separator and "@" in rest else ""
    return credentials.split(":", 1)[1] if ":" in credentials else ""


def is_unreachable(error: DBAPIError) -> bool:
    """A dropped or refused connection (or SQLite's lock wait running out): worth trying again."""
    return isinstance(error, OperationalError) or error.connection_invalidated


def _sqlite_engine(url: str, *, echo: bool, immediate: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:"):
        raise ValueError("opsbot needs a SQLite file (sqlite:///path/opsbot.db): an in-memory database is lost on exit")
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_immediate if immediate else _begin_deferred)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's implicit BEGIN is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
