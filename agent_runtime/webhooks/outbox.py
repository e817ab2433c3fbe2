"""The persistent outbox: events and their deliveries in one SQLite file.

`enqueue` commits the event body and one delivery row per endpoint before it returns (WAL,
synchronous=FULL), so an event the runtime reported survives a crash. The body is encoded
once, here; every attempt sends those bytes. Delivery rows move pending → delivered | dead;
nothing is deleted, so a dead event can be inspected and replayed by hand.

Claiming a row takes a lease (its next attempt time moves past the request timeout) and
counts the attempt; a process that dies mid-request leaves the row pending, and any worker
retries it once the lease runs out. Several processes may share the file.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from agent_runtime.storage import ThreadConnections
from agent_runtime.webhooks.events import encode_event, new_event_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, type TEXT NOT NULL, created_at REAL NOT NULL, body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL REFERENCES events (id), url TEXT NOT NULL,
    status TEXT NOT NULL,            -- pending | delivered | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status INTEGER, last_error TEXT, finished_at REAL,
    PRIMARY KEY (event_id, url)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One claimed attempt: send `body` to `url`; `attempt` counts from 1."""

    event_id: str
    event_type: str
    url: str
    body: bytes
    attempt: int
    created_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    event_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None


class Outbox:
    """Events for `urls`, stored in one SQLite file; blocking work runs in worker threads."""

    def __init__(self, path: Path, urls: Sequence[str]) -> None:
        if isinstance(urls, str):
            raise TypeError("urls must be a sequence of URLs, not one string")
        self.path = path
        self.urls = tuple(urls)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._listeners: list[Callable[[], None]] = []
        self._db().executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    def subscribe(self, listener: Callable[[], None]) -> None:
        """`listener()` runs in the event loop after each commit (wakes an idle worker)."""
        self._listeners.append(listener)

    # ---- blocking parts (worker threads) ----------------------------------------------------
    def _insert(self, event_id: str, event_type: str, now: float, body: bytes) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # the event and all its deliveries commit together
        try:
            inserted = db.execute("INSERT OR IGNORE INTO events (id, type, created_at, body) VALUES (?, ?, ?, ?)",
                                  (event_id, event_type, now, body)).rowcount
            if not inserted:  # the same event again (a relay repeated after a crash): stored once
                db.execute("COMMIT")
                return
            db.executemany(
                "INSERT INTO deliveries (event_id, url, status, next_attempt_at) VALUES (?, ?, 'pending', ?)",
                [(event_id, url, now) for url in self.urls],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _claim(self, limit: int, now: float, lease_s: float) -> list[Delivery]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # select + lease are atomic across processes
        try:
            rows = db.execute(
                "SELECT d.event_id, e.type, d.url, e.body, d.attempts, e.created_at FROM deliveries d"
                " JOIN events e ON e.id = d.event_id WHERE d.status = 'pending' AND d.next_attempt_at <= ?"
                " ORDER BY d.next_attempt_at, d.event_id LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ? WHERE event_id = ? AND url = ?",
                [(now + lease_s, row[0], row[2]) for row in rows],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return [Delivery(event_id, type_, url, bytes(body), attempts + 1, created)
                for event_id, type_, url, body, attempts, created in rows]

    def _finish(self, delivery: Delivery, status: str, next_at: float | None, http_status: int | None, err: str | None) -> None:
        now = time.time()
        self._db().execute(
            "UPDATE deliveries SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at), last_status = ?,"
            " last_error = ?, finished_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END"
            " WHERE event_id = ? AND url = ? AND status = 'pending'",
            (status, next_at, http_status, err, status, now, delivery.event_id, delivery.url),
        )

    def _next_due(self) -> float | None:
        row = self._db().execute("SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending'").fetchone()
        return row[0]

    def _rows(self, event_id: str | None) -> list[DeliveryRow]:
        query = ("SELECT d.event_id, e.type, d.url, d.status, d.attempts, d.next_attempt_at, d.last_status, d.last_error"
                 " FROM deliveries d JOIN events e ON e.id = d.event_id")
        args: tuple[Any, ...] = ()
        if event_id is not None:
            query, args = query + " WHERE d.event_id = ?", (event_id,)
        return [DeliveryRow(*row) for row in self._db().execute(query + " ORDER BY d.event_id, d.url", args)]

    def _body(self, event_id: str) -> bytes:
        row = self._db().execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
        if row is None:
            raise KeyError(event_id)
        return bytes(row[0])

    # ---- the interface ---------------------------------------------------------------------
    async def enqueue(self, event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
        """Stores the event for every endpoint; returns its id once committed.

        With `event_id` (fixed by the caller before a crash could happen) the call is idempotent:
        an id already in the outbox is not stored or delivered again."""
        now = time.time()
        event_id = event_id or new_event_id(now)
        body = encode_event(event_id, event_type, int(now), data)
        await anyio.to_thread.run_sync(self._insert, event_id, event_type, now, body)
        for listener in self._listeners:
            listener()
        return event_id

    async def claim_due(self, limit: int, lease_s: float) -> list[Delivery]:
        return await anyio.to_thread.run_sync(self._claim, limit, time.time(), lease_s)

    async def delivered(self, delivery: Delivery, http_status: int) -> None:
        await anyio.to_thread.run_sync(self._finish, delivery, "delivered", None, http_status, None)

    async def retry_at(self, delivery: Delivery, when: float, http_status: int | None, error: str) -> None:
        await anyio.to_thread.run_sync(self._finish, delivery, "pending", when, http_status, error)

    async def dead(self, delivery: Delivery, http_status: int | None, error: str) -> None:
        await anyio.to_thread.run_sync(self._finish, delivery, "dead", None, http_status, error)

    async def next_due(self) -> float | None:
        """Wall-clock time of the earliest pending attempt, or None when nothing is pending."""
        return await anyio.to_thread.run_sync(self._next_due)

    async def rows(self, event_id: str | None = None) -> list[DeliveryRow]:
        return await anyio.to_thread.run_sync(self._rows, event_id)

    async def body(self, event_id: str) -> bytes:
        return await anyio.to_thread.run_sync(self._body, event_id)
