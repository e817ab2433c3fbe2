"""The queue store: accepted handoffs and their life in a human queue.

An interface (`QueueStore`) with an embedded SQLite implementation. Every write commits
before it returns, in WAL mode with synchronous=FULL, so a crash after "accepted" loses
nothing. A shared server store (Postgres, Redis) can implement the same protocol so several
runtime processes share one set of queues.

Life of a handoff: waiting → claimed → completed by a human; or waiting → failed (the carrier
refused the transfer) or → abandoned (the caller hung up while waiting).

The event that tells the world about a change (`agent.handoff`, `agent.handoff_failed`) is
written in the same transaction as the change, into `handoff_events`, and relayed from there
to the webhook outbox (handoff/announce.py). A crash between the two files therefore cannot
lose the event: whatever is still in `handoff_events` is relayed at start-up, with the same
event id, so the outbox stores it once.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from agent_runtime.storage import ThreadConnections


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
    status: str = "waiting"  # waiting → claimed → completed; or waiting → failed | abandoned
    created_at: float = 0.0
    claimed_by: str | None = None
    claimed_at: float | None = None
    completed_at: float | None = None
    closed_at: float | None = None  # when it failed or was abandoned
    close_reason: str | None = None  # why (the carrier's error, "no_answer", "caller_hung_up", …)

    def public(self, with_transcript: bool) -> dict[str, Any]:
        data = asdict(self)
        if not with_transcript:
            data.pop("transcript")
        return data


STATUSES = ("waiting", "claimed", "completed", "failed", "abandoned")
CLOSED = frozenset({"failed", "abandoned"})  # the ends of a handoff that never reached a person


@dataclass(frozen=True, slots=True)
class HandoffEvent:
    """An event to relay to the webhook outbox; `id` is fixed when it is written, so a relay
    repeated after a crash is recognised by the outbox as the same event."""

    id: str
    type: str
    data: dict[str, Any]


class QueueStore(Protocol):
    async def enqueue(self, handoff: Handoff, announce: HandoffEvent | None = None) -> Handoff: ...
    async def get(self, handoff_id: str) -> Handoff: ...
    async def waiting(self, queue: str) -> list[Handoff]: ...
    async def waiting_for_call(self, call_id: str) -> list[Handoff]: ...
    async def queues(self) -> dict[str, dict[str, int]]: ...
    async def claim(self, handoff_id: str, agent: str) -> Handoff: ...
    async def complete(self, handoff_id: str) -> Handoff: ...
    async def close(self, handoff_id: str, status: str, reason: str, announce: HandoffEvent | None = None) -> Handoff: ...
    async def unannounced(self, limit: int = 100) -> list[HandoffEvent]: ...
    async def announced(self, event_id: str) -> None: ...


def new_handoff_id() -> str:
    # Sortable by time, unguessable after it: like Rozper's prefixed ULIDs.
    return f"hnd_{int(time.time() * 1000):013x}{secrets.token_hex(6)}"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS handoffs (
    id TEXT PRIMARY KEY, call_id TEXT NOT NULL, queue TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoffs_queue ON handoffs (queue, status, created_at);
CREATE INDEX IF NOT EXISTS handoffs_call ON handoffs (call_id, status);
CREATE TABLE IF NOT EXISTS handoff_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, data TEXT NOT NULL
);
"""


class SqliteQueueStore:
    """One SQLite file; calls run in worker threads, one connection per thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connections = ThreadConnections(self.path)
        with self._db() as db:
            db.executescript(_SCHEMA)

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def _atomic(self, fn: Any) -> Any:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # checks and writes are one atomic step across processes
        try:
            result = fn(db)
            db.execute("COMMIT")
            return result
        except BaseException:
            db.execute("ROLLBACK")
            raise

    @staticmethod
    def _add_event(db: sqlite3.Connection, event: HandoffEvent | None) -> None:
        if event is not None:
            db.execute("INSERT INTO handoff_events (id, type, data) VALUES (?, ?, ?)", (event.id, event.type, json.dumps(event.data)))

    # ---- blocking parts (worker threads) ----------------------------------------------------
    def _enqueue(self, handoff: Handoff, announce: HandoffEvent | None) -> Handoff:
        handoff.created_at = handoff.created_at or time.time()

        def write(db: sqlite3.Connection) -> Handoff:
            db.execute(
                "INSERT INTO handoffs (id, call_id, queue, status, created_at, body) VALUES (?, ?, ?, ?, ?, ?)",
                (handoff.id, handoff.call_id, handoff.queue, handoff.status, handoff.created_at, json.dumps(asdict(handoff))),
            )
            self._add_event(db, announce)  # the handoff and its event commit together
            return handoff

        return self._atomic(write)

    def _get(self, handoff_id: str) -> Handoff:
        row = self._db().execute("SELECT body FROM handoffs WHERE id = ?", (handoff_id,)).fetchone()
        if row is None:
            raise HandoffNotFound(handoff_id)
        return Handoff(**json.loads(row[0]))

    def _select(self, where: str, *args: Any) -> list[Handoff]:
        rows = self._db().execute(f"SELECT body FROM handoffs WHERE {where} ORDER BY created_at, id", args).fetchall()
        return [Handoff(**json.loads(body)) for (body,) in rows]

    def _queues(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for queue, status, count in self._db().execute("SELECT queue, status, COUNT(*) FROM handoffs GROUP BY queue, status"):
            out.setdefault(queue, dict.fromkeys(STATUSES, 0))[status] = count
        return out

    def _transition(self, handoff_id: str, frm: str, to: str, announce: HandoffEvent | None = None, **changes: Any) -> Handoff:
        def write(db: sqlite3.Connection) -> Handoff:
            handoff = self._get(handoff_id)
            if handoff.status != frm:
                raise HandoffConflict(f"handoff {handoff_id} is {handoff.status}, not {frm}")
            handoff.status = to
            for key, value in changes.items():
                setattr(handoff, key, value)
            db.execute("UPDATE handoffs SET status = ?, body = ? WHERE id = ?", (to, json.dumps(asdict(handoff)), handoff_id))
            self._add_event(db, announce)
            return handoff

        return self._atomic(write)

    def _unannounced(self, limit: int) -> list[HandoffEvent]:
        rows = self._db().execute("SELECT id, type, data FROM handoff_events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [HandoffEvent(event_id, event_type, json.loads(data)) for event_id, event_type, data in rows]

    # ---- the interface ---------------------------------------------------------------------
    async def enqueue(self, handoff: Handoff, announce: HandoffEvent | None = None) -> Handoff:
        """Stores a waiting handoff (and, in the same commit, the event announcing it)."""
        return await self._run(self._enqueue, handoff, announce)

    async def get(self, handoff_id: str) -> Handoff:
        return await self._run(self._get, handoff_id)

    async def waiting(self, queue: str) -> list[Handoff]:
        return await self._run(self._select, "queue = ? AND status = 'waiting'", queue)

    async def waiting_for_call(self, call_id: str) -> list[Handoff]:
        """The call's handoffs still waiting for a person, oldest first."""
        return await self._run(self._select, "call_id = ? AND status = 'waiting'", call_id)

    async def queues(self) -> dict[str, dict[str, int]]:
        return await self._run(self._queues)

    async def claim(self, handoff_id: str, agent: str) -> Handoff:
        return await self._run(lambda: self._transition(handoff_id, "waiting", "claimed", claimed_by=agent, claimed_at=time.time()))

    async def complete(self, handoff_id: str) -> Handoff:
        return await self._run(lambda: self._transition(handoff_id, "claimed", "completed", completed_at=time.time()))

    async def close(self, handoff_id: str, status: str, reason: str, announce: HandoffEvent | None = None) -> Handoff:
        """A waiting handoff that will never reach a person: `failed` or `abandoned`, with why.
        Raises HandoffConflict when it is no longer waiting (a person claimed it meanwhile)."""
        if status not in CLOSED:
            raise ValueError(f"status must be one of {sorted(CLOSED)}, got {status!r}")
        return await self._run(lambda: self._transition(
            handoff_id, "waiting", status, announce, closed_at=time.time(), close_reason=reason))

    async def unannounced(self, limit: int = 100) -> list[HandoffEvent]:
        """Events written with a change but not yet handed to the outbox, oldest first."""
        return await self._run(self._unannounced, limit)

    async def announced(self, event_id: str) -> None:
        """The outbox has the event: it need not be relayed again."""
        await self._run(lambda: self._db().execute("DELETE FROM handoff_events WHERE id = ?", (event_id,)))
