"""SQLite connections for the embedded stores (queues, outbox, seen events, idempotency keys).

One connection per thread, because sqlite3 connections must not cross threads and store calls
run in worker threads. WAL, so a reader never blocks the writer; `durable` adds
synchronous=FULL, so a committed row survives power loss (accepted handoffs and events).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


class ThreadConnections:
    def __init__(self, path: Path, durable: bool = True) -> None:
        self.path = path
        self._durable = durable
        self._local = threading.local()

    def get(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            if self._durable:
                db.execute("PRAGMA synchronous=FULL")
            self._local.db = db
        return db
