"""The queue store: accepted handoffs and their life in a human queue.

An interface (`QueueStore`) with an embedded SQLite implementation. Every write commits
before it returns, in WAL mode with synchronous=FULL, so a crash after "accepted" loses
nothing. A shared server store (Postgres, Redis) can implement the same protocol so several
runtime processes share one set of queues.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio


class HandoffNotFound(LookupError):
    pass


class HandoffConflict(RuntimeError):
    """The handoff is not in a state that allows this (e.g. already claimed)."""


@dataclass(slots=True)
class Handoff:
    id: str
    call_id: str
    queue: str
    reason: str
    summary: str
    caller: str
    callee: str
    last_utterance: str
    transcript: list[dict[str, str]] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    status: str = "waiting"  # waiting → claimed → completed
    created_at: float = 0.0
    claimed_by: str | None = None
    claimed_at: float | None = None
    completed_at: float | None = None

    def public(self, with_transcript: bool) -> dict[str, Any]:
        data = asdict(self)
        if not with_transcript:
            data.pop("transcript")
        return data


class QueueStore(Protocol):
    async def enqueue(self, handoff: Handoff) -> Handoff: ...
    async def get(self, handoff_id: str) -> Handoff: ...
    async def waiting(self, queue: str) -> list[Handoff]: ...
    async def queues(self) -> dict[str, dict[str, int]]: ...
    async def claim(self, handoff_id: str, agent: str) -> Handoff: ...
    async def complete(self, handoff_id: str) -> Handoff: ...


def new_handoff_id() -> str:
    # Sortable by time, unguessable after it: like Rozper's prefixed ULIDs.
    return f"hnd_{int(time.time() * 1000):013x}{secrets.token_hex(6)}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY, call_id TEXT NOT NULL, queue TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoffs_queue ON handoffs (queue, status, created_at);
"""


class SqliteQueueStore:
    """One SQLite file; calls run in worker threads, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an accepted handoff survives power loss
            self._local.db = db
        return db

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    # ---- blocking parts (worker threads) ----------------------------------------------------
    def _enqueue(self, handoff: Handoff) -> Handoff:
        handoff.created_at = handoff.created_at or time.time()
        self._db().execute(
            "INSERT INTO handoffs (id, call_id, queue, status, created_at, body) VALUES (?, ?, ?, ?, ?, ?)",
            (handoff.id, handoff.call_id, handoff.queue, handoff.status, handoff.created_at, json.dumps(asdict(handoff))),
        )
        return handoff

    def _get(self, handoff_id: str) -> Handoff:
        row = self._db().execute("SELECT body FROM handoffs WHERE id = ?", (handoff_id,)).fetchone()
        if row is None:
            raise HandoffNotFound(handoff_id)
        return Handoff(**json.loads(row[0]))

    def _waiting(self, queue: str) -> list[Handoff]:
        rows = self._db().execute(
            "SELECT body FROM handoffs WHERE queue = ? AND status = 'waiting' ORDER BY created_at, id", (queue,)
        ).fetchall()
        return [Handoff(**json.loads(body)) for (body,) in rows]

    def _queues(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for queue, status, count in self._db().execute("SELECT queue, status, COUNT(*) FROM handoffs GROUP BY queue, status"):
            out.setdefault(queue, {"waiting": 0, "claimed": 0, "completed": 0})[status] = count
        return out

    def _transition(self, handoff_id: str, frm: str, to: str, **changes: Any) -> Handoff:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # the check and the update are one atomic step across processes
        try:
            handoff = self._get(handoff_id)
            if handoff.status != frm:
                raise HandoffConflict(f"handoff {handoff_id} is {handoff.status}, not {frm}")
            handoff.status = to
            for key, value in changes.items():
                setattr(handoff, key, value)
            db.execute("UPDATE handoffs SET status = ?, body = ? WHERE id = ?", (to, json.dumps(asdict(handoff)), handoff_id))
            db.execute("COMMIT")
            return handoff
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---- the interface ---------------------------------------------------------------------
    async def enqueue(self, handoff: Handoff) -> Handoff:
        return await self._run(self._enqueue, handoff)

    async def get(self, handoff_id: str) -> Handoff:
        return await self._run(self._get, handoff_id)

    async def waiting(self, queue: str) -> list[Handoff]:
        return await self._run(self._waiting, queue)

    async def queues(self) -> dict[str, dict[str, int]]:
        return await self._run(self._queues)

    async def claim(self, handoff_id: str, agent: str) -> Handoff:
        return await self._run(lambda: self._transition(handoff_id, "waiting", "claimed", claimed_by=agent, claimed_at=time.time()))

    async def complete(self, handoff_id: str) -> Handoff:
        return await self._run(lambda: self._transition(handoff_id, "claimed", "completed", completed_at=time.time()))
