"""The runtime's HTTP endpoints answer every error in Rozper's envelope (Starlette's own 404, 405
and 500 included), and an Idempotency-Key whose first request is still running answers 409 to
the second instead of running it twice. Real server, real HTTP, real SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from agent_runtime.handoff.store import Handoff, SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from callkit import live_agent

pytestmark = pytest.mark.anyio
WRITER = "key_writer_0123456789"
KEYS = ((WRITER, frozenset({"queues.read", "queues.write", "transcripts.read"})),)
AUTH = {"Authorization": f"Bearer {WRITER}"}


def _standins() -> Providers:
    return Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())


def _envelope(response: httpx.Response, status: int, code: str) -> dict:
    """Asserts Rozper's exact envelope shape; returns the error object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"code", "message", "request_id", "param_errors"}, error
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert error["request_id"].startswith("req_") and response.headers["request-id"] == error["request_id"]
    assert isinstance(error["param_errors"], list)
    return error


async def test_framework_errors_use_the_envelope(tmp_path: Path) -> None:
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    # The store's file is destroyed before the server reads it: its queries fail, unhandled, as a 500.
    for leftover in tmp_path.glob("queues.sqlite3*"):
        leftover.unlink()
    (tmp_path / "queues.sqlite3").write_bytes(b"this is not an SQLite database" * 200)
    async with live_agent(_standins(), queue_store=store, api_keys=KEYS) as agent:
        async with httpx.AsyncClient(base_url=agent.config.base_url) as http:
            no_route = await http.get("/v2/nothing-here")
            wrong_method = await http.delete("/v1/queues", headers=AUTH)
            connect_unsigned = await http.post("/rozper/voice", content=b"{}")
            bad_key = await http.post("/v1/handoffs/hnd_missing/claim", json={"agent": "ann"},
                                      headers={**AUTH, "Idempotency-Key": "k" * 256})
            broken = await http.get("/v1/queues/support/calls", headers=AUTH)
            healthy = await http.get("/healthz")
    _envelope(no_route, 404, "not_found")
    _envelope(wrong_method, 405, "bad_request")
    assert "GET" in wrong_method.headers["allow"]
    _envelope(connect_unsigned, 401, "unauthorized")
    assert _envelope(bad_key, 400, "bad_request")["param_errors"] == [{"param": "Idempotency-Key", "reason": "length"}]
    error = _envelope(broken, 500, "server_error")
    assert "sqlite" not in json.dumps(error).lower()  # no internals leak to the client
    assert healthy.status_code == 200  # the server survived it


class GatedStore(SqliteQueueStore):
    """The real store, whose `claim` waits at a gate so a request can be caught while it runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims = 0
        self.entered = anyio.Event()
        self.gate = anyio.Event()

    async def claim(self, handoff_id: str, agent: str) -> Handoff:
        self.claims += 1
        self.entered.set()
        await self.gate.wait()
        return await super().claim(handoff_id, agent)


async def test_a_key_in_progress_answers_409_and_runs_once(tmp_path: Path) -> None:
    store = GatedStore(tmp_path / "queues.sqlite3")
    await store.enqueue(Handoff(id="hnd_1", call_id="CA1", queue="support", reason="r", summary="s",
                                caller="+1555", callee="+1666", last_utterance="help"))
    headers = {**AUTH, "Idempotency-Key": "claim-hnd_1-attempt-1"}
    answers: dict[str, httpx.Response] = {}
    async with live_agent(_standins(), queue_store=store, api_keys=KEYS) as agent:
        async with httpx.AsyncClient(base_url=agent.config.base_url, timeout=10) as http:

            async def first() -> None:
                answers["first"] = await http.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=headers)

            async with anyio.create_task_group() as tg:
                tg.start_soon(first)
                with anyio.fail_after(5):
                    await store.entered.wait()  # the first request is inside the handler now
                    second = await http.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=headers)
                    changed = await http.post("/v1/handoffs/hnd_1/claim", json={"agent": "bob"}, headers=headers)
                store.gate.set()
            replay = await http.post("/v1/handoffs/hnd_1/claim", json={"agent": "ann"}, headers=headers)

    assert "still running" in _envelope(second, 409, "conflict")["message"]
    assert "different request" in _envelope(changed, 409, "conflict")["message"]
    assert answers["first"].status_code == 200 and answers["first"].json()["claimed_by"] == "ann"
    assert replay.status_code == 200 and replay.json() == answers["first"].json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert store.claims == 1  # the handler ran once for the key


async def test_a_validation_failure_is_not_stored_so_the_key_can_be_reused(tmp_path: Path) -> None:
    store = SqliteQueueStore(tmp_path / "queues.sqlite3")
    await store.enqueue(Handoff(id="hnd_2", call_id="CA2", queue="support", reason="r", summary="s",
                                caller="+1555", callee="+1666", last_utterance="help"))
    headers = {**AUTH, "Idempotency-Key": "claim-hnd_2"}
    async with live_agent(_standins(), queue_store=store, api_keys=KEYS) as agent:
        async with httpx.AsyncClient(base_url=agent.config.base_url) as http:
            invalid = await http.post("/v1/handoffs/hnd_2/claim", content=b"{}", headers={**headers, "Content-Type": "application/json"})
            fixed = await http.post("/v1/handoffs/hnd_2/claim", content=b"{}", headers={**headers, "Content-Type": "application/json"})
            unknown = await http.get("/v1/handoffs/hnd_missing", headers=AUTH)
    _envelope(unknown, 404, "not_found")
    # The same bytes twice: the first was refused before it ran, so the second runs again (422 again).
    assert _envelope(invalid, 422, "invalid_param")["param_errors"] == [{"param": "agent", "reason": "required"}]
    assert "idempotent-replayed" not in fixed.headers
    _envelope(fixed, 422, "invalid_param")
