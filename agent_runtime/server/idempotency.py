"""Idempotency-Key for the runtime's own mutations (Rozper's convention, protocols.md §4.3).

A new key is first recorded as in progress (one atomic insert), then the request runs, then its
answer is stored. Same key + same payload within 24 h → the stored answer is replayed; while
the first request still runs → 409 (the client retries later); same key + another payload →
409 conflict. Keys are scoped per API key, so two clients never collide. A process that dies
mid-request leaves an in-progress row; after LEASE_S a retry takes it over.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import anyio

from agent_runtime.storage import ThreadConnections

TTL_S = 24 * 3600
LEASE_S = 60.0  # an in-progress row older than this was left by a crashed process
MAX_KEY_LENGTH = 255


class IdempotencyConflict(Exception):
    """The key was used with a different request."""


class State(Enum):
    NEW = "new"  # recorded as in progress: run the request, then `finish` or `release`
    REPLAY = "replay"  # finished before: answer `status`/`body`
    IN_PROGRESS = "in_progress"  # another request with this key is running right now


@dataclass(frozen=True, slots=True)
class Begin:
    state: State
    status: int | None = None
    body: dict | None = None


class IdempotencyStore:
    def __init__(self, path: Path, lease_s: float = LEASE_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lease_s = lease_s
        self._connections = ThreadConnections(self.path, durable=False)
        # A row with status NULL is in progress (created_at is when it started).
        self._db().execute(
            "CREATE TABLE IF NOT EXISTS idempotency (scope TEXT, key TEXT, fingerprint TEXT, status INTEGER,"
            " body TEXT, created_at REAL, PRIMARY KEY (scope, key))"
        )

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()

    def _begin(self, scope: str, key: str, fingerprint: str) -> Begin:
        db = self._db()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")  # look-up and claim are one step, across threads and processes
        try:
            db.execute("DELETE FROM idempotency WHERE created_at < ?", (now - TTL_S,))
            row = db.execute("SELECT fingerprint, status, body, created_at FROM idempotency WHERE scope = ? AND key = ?",
                             (scope, key)).fetchone()
            if row is None:
                db.execute("INSERT INTO idempotency VALUES (?, ?, ?, NULL, NULL, ?)", (scope, key, fingerprint, now))
                result = Begin(State.NEW)
            elif row[0] != fingerprint:
                raise IdempotencyConflict(key)
            elif row[1] is not None:
                result = Begin(State.REPLAY, row[1], json.loads(row[2]))
            elif row[3] < now - self.lease_s:  # abandoned by a crashed process: take it over
                db.execute("UPDATE idempotency SET created_at = ? WHERE scope = ? AND key = ?", (now, scope, key))
                result = Begin(State.NEW)
            else:
                result = Begin(State.IN_PROGRESS)
            db.execute("COMMIT")
            return result
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _finish(self, scope: str, key: str, status: int, body: dict) -> None:
        self._db().execute("UPDATE idempotency SET status = ?, body = ? WHERE scope = ? AND key = ? AND status IS NULL",
                           (status, json.dumps(body), scope, key))

    def _release(self, scope: str, key: str) -> None:
        self._db().execute("DELETE FROM idempotency WHERE scope = ? AND key = ? AND status IS NULL", (scope, key))

    async def begin(self, scope: str, key: str, fingerprint: str) -> Begin:
        """Raises IdempotencyConflict when the key was used with another request."""
        return await anyio.to_thread.run_sync(self._begin, scope, key, fingerprint)

    async def finish(self, scope: str, key: str, status: int, body: dict) -> None:
        await anyio.to_thread.run_sync(self._finish, scope, key, status, body)

    async def release(self, scope: str, key: str) -> None:
        """The request did not run to an answer worth keeping: a retry with the key runs it again."""
        await anyio.to_thread.run_sync(self._release, scope, key)
