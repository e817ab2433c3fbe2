"""Inbound event ids already handled, in SQLite, so a redelivery after a restart is a duplicate.

An id is claimed (`processing`) before its handler runs and marked `done` after; a handler that
fails releases the claim so the sender's retry is handled. Ids are kept for 48 h: Rozper
retries for up to 24 h, and the margin covers clock skew and a long outage.
"""

from __future__ import annotations

import sqlite3
import time
from enum import Enum
from pathlib import Path

import anyio

from agent_runtime.storage import ThreadConnections

KEEP_S = 48 * 3600.0
LEASE_S = 60.0  # a claim older than this was left by a crashed process: take it over


class Claim(Enum):
    NEW = "new"  # handle it
    DONE = "done"  # already handled: answer 2xx, do nothing
    BUSY = "busy"  # another request is handling it right now


class SeenEvents:
    def __init__(self, path: Path, keep_s: float = KEEP_S) -> None:
        self.path = path
        self.keep_s = keep_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        self._db().executescript(
            "CREATE TABLE IF NOT EXISTS seen_events (id TEXT PRIMARY KEY, type TEXT NOT NULL,"
            " state TEXT NOT NULL, received_at REAL NOT NULL);"
            "CREATE INDEX IF NOT EXISTS seen_events_age ON seen_events (received_at);"  # the purge on each claim
        )

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    def _claim(self, event_id: str, event_type: str) -> Claim:
        db = self._db()
        now = time.time()
        db.execute("DELETE FROM seen_events WHERE received_at < ?", (now - self.keep_s,))
        inserted = db.execute(
            "INSERT OR IGNORE INTO seen_events (id, type, state, received_at) VALUES (?, ?, 'processing', ?)",
            (event_id, event_type, now),
        ).rowcount
        if inserted:
            return Claim.NEW
        row = db.execute("SELECT state, received_at FROM seen_events WHERE id = ?", (event_id,)).fetchone()
        if row is None or row[0] == "done":
            return Claim.DONE
        taken = db.execute(
            "UPDATE seen_events SET received_at = ? WHERE id = ? AND state = 'processing' AND received_at = ? AND ? < ?",
            (now, event_id, row[1], row[1], now - LEASE_S),
        ).rowcount
        return Claim.NEW if taken else Claim.BUSY

    def _set(self, event_id: str, done: bool) -> None:
        if done:
            self._db().execute("UPDATE seen_events SET state = 'done' WHERE id = ?", (event_id,))
        else:
            self._db().execute("DELETE FROM seen_events WHERE id = ? AND state = 'processing'", (event_id,))

    async def claim(self, event_id: str, event_type: str) -> Claim:
        return await anyio.to_thread.run_sync(self._claim, event_id, event_type)

    async def done(self, event_id: str) -> None:
        await anyio.to_thread.run_sync(self._set, event_id, True)

    async def release(self, event_id: str) -> None:
        await anyio.to_thread.run_sync(self._set, event_id, False)
