"""Idempotency-Key for the runtime's own mutations (Rozper's convention, protocols.md §4.3).

Same key + same payload within 24 h → the stored answer is replayed; same key + another
payload → 409 conflict. Keys are scoped per API key, so two clients never collide.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path

import anyio

TTL_S = 24 * 3600
MAX_KEY_LENGTH = 255


class IdempotencyConflict(Exception):
    pass


class IdempotencyStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._db().execute(
            "CREATE TABLE IF NOT EXISTS idempotency (scope TEXT, key TEXT, fingerprint TEXT, status INTEGER,"
            " body TEXT, created_at REAL, PRIMARY KEY (scope, key))"
        )

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
        return db

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()

    def _lookup(self, scope: str, key: str, fingerprint: str) -> tuple[int, dict] | None:
        db = self._db()
        db.execute("DELETE FROM idempotency WHERE created_at < ?", (time.time() - TTL_S,))
        row = db.execute("SELECT fingerprint, status, body FROM idempotency WHERE scope = ? AND key = ?", (scope, key)).fetchone()
        if row is None:
            return None
        if row[0] != fingerprint:
            raise IdempotencyConflict(key)
        return row[1], json.loads(row[2])

    def _store(self, scope: str, key: str, fingerprint: str, status: int, body: dict) -> None:
        self._db().execute(
            "INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
            (scope, key, fingerprint, status, json.dumps(body), time.time()),
        )

    async def lookup(self, scope: str, key: str, fingerprint: str) -> tuple[int, dict] | None:
        return await anyio.to_thread.run_sync(self._lookup, scope, key, fingerprint)

    async def store(self, scope: str, key: str, fingerprint: str, status: int, body: dict) -> None:
        await anyio.to_thread.run_sync(self._store, scope, key, fingerprint, status, body)
