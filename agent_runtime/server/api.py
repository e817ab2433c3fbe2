"""The runtime's own HTTP API: human queues, live calls, metrics.

Bearer keys with scopes guard anything that reads transcripts or changes state; errors use
Rozper's envelope; mutations honour Idempotency-Key.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent_runtime.handoff.store import HandoffConflict, HandoffNotFound
from agent_runtime.runtime import Runtime
from agent_runtime.server.errors import envelope, new_request_id
from agent_runtime.server.idempotency import MAX_KEY_LENGTH, IdempotencyConflict, IdempotencyStore, State

Handler = Callable[[Request], Awaitable[Response]]
# Answers to a request that failed validation before it ran: not stored, so the client may fix
# the request and reuse its key (protocols.md §4.3).
NOT_STORED = frozenset({400, 422})


def _key_scopes(runtime: Runtime, header: str | None) -> frozenset[str] | None:
    if not header or not header.startswith("Bearer "):
        return None
    presented = header[7:].strip().encode()
    found: frozenset[str] | None = None
    for key, scopes in runtime.config.api_keys:
        # Compare against every key, in constant time each, whatever matched.
        if hmac.compare_digest(presented, key.encode()):
            found = scopes
    return found


def guarded(runtime: Runtime, scope: str, idempotency: IdempotencyStore | None = None) -> Callable[[Handler], Handler]:
    """Requires a bearer key with `scope`; for mutations, replays by Idempotency-Key."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            request_id = new_request_id()
            request.state.request_id = request_id
            scopes = _key_scopes(runtime, request.headers.get("authorization"))
            if scopes is None:
                return envelope(401, "unauthorized", "missing or unknown API key", request_id)
            if scope not in scopes:
                return envelope(403, "forbidden", f"this key lacks the {scope} scope", request_id)
            key = request.headers.get("idempotency-key")
            if idempotency is None or key is None:
                return await handler(request)
            if not 1 <= len(key) <= MAX_KEY_LENGTH:
                return envelope(400, "bad_request", "Idempotency-Key must be 1-255 characters", request_id,
                                [{"param": "Idempotency-Key", "reason": "length"}])
            owner = hmac.new(b"idempotency-scope", request.headers["authorization"].encode(), "sha256").hexdigest()
            fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
            try:
                begun = await idempotency.begin(owner, key, fingerprint)
            except IdempotencyConflict:
                return envelope(409, "conflict", "Idempotency-Key was used with a different request", request_id)
            if begun.state is State.IN_PROGRESS:
                return envelope(409, "conflict", "a request with this Idempotency-Key is still running; retry later", request_id)
            if begun.state is State.REPLAY:
                assert begun.status is not None and begun.body is not None
                return JSONResponse(begun.body, status_code=begun.status, headers={"Idempotent-Replayed": "true"})
            try:
                response = await handler(request)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await idempotency.release(owner, key)
                raise
            if response.status_code >= 500 or response.status_code in NOT_STORED:  # a retry may succeed
                await idempotency.release(owner, key)
            else:
                await idempotency.finish(owner, key, response.status_code, _json(response))
            return response

        return endpoint

    return wrap


def _json(response: Response) -> dict:
    return json.loads(bytes(response.body))


def api_routes(runtime: Runtime, idempotency: IdempotencyStore) -> list[Route]:
    def store_or_error(request: Request) -> Any:
        if runtime.queue_store is None:
            return envelope(404, "not_found", "no queue store on this runtime", request.state.request_id)
        return runtime.queue_store

    async def list_queues(request: Request) -> Response:
        store = store_or_error(request)
        if isinstance(store, Response):
            return store
        return JSONResponse({"object": "list", "data": [{"queue": q, **counts} for q, counts in sorted((await store.queues()).items())]})

    async def waiting_calls(request: Request) -> Response:
        store = store_or_error(request)
        if isinstance(store, Response):
            return store
        now = time.time()
        waiting = await store.waiting(request.path_params["queue"])
        data = [{**h.public(with_transcript=False), "position": i, "wait_s": round(now - h.created_at, 1)}
                for i, h in enumerate(waiting, 1)]
        return JSONResponse({"object": "list", "data": data})

    async def get_handoff(request: Request) -> Response:
        store = store_or_error(request)
        if isinstance(store, Response):
            return store
        try:
            handoff = await store.get(request.path_params["handoff_id"])
        except HandoffNotFound:
            return envelope(404, "not_found", "no such handoff", request.state.request_id)
        return JSONResponse(handoff.public(with_transcript=True))

    def transition(action: str) -> Handler:
        async def endpoint(request: Request) -> Response:
            store = store_or_error(request)
            if isinstance(store, Response):
                return store
            handoff_id = request.path_params["handoff_id"]
            try:
                if action == "claim":
                    body = await request.json() if await request.body() else {}
                    agent = body.get("agent") if isinstance(body, dict) else None
                    if not isinstance(agent, str) or not agent.strip():
                        return envelope(422, "invalid_param", "agent: required", request.state.request_id,
                                        [{"param": "agent", "reason": "required"}])
                    handoff = await store.claim(handoff_id, agent.strip())
                else:
                    handoff = await store.complete(handoff_id)
            except HandoffNotFound:
                return envelope(404, "not_found", "no such handoff", request.state.request_id)
            except HandoffConflict as exc:
                return envelope(409, "conflict", str(exc), request.state.request_id)
            except ValueError:
                return envelope(400, "bad_request", "body must be JSON", request.state.request_id)
            return JSONResponse(handoff.public(with_transcript=False))

        return endpoint

    async def active_calls(request: Request) -> Response:
        data = [{"call_id": r.call_id, "caller": r.context.caller, "barge_ins": r.barge_ins} for r in runtime.active_calls.values()]
        return JSONResponse({"object": "list", "data": data})

    async def call_detail(request: Request) -> Response:
        call_id = request.path_params["call_id"]
        record = runtime.active_calls.get(call_id) or next(
            (r for r in reversed(runtime.finished_calls) if r.call_id == call_id), None)
        if record is None:
            return envelope(404, "not_found", "no such call among the active and the last 200 ended", request.state.request_id)
        return JSONResponse({
            "call_id": record.call_id, "caller": record.context.caller, "end_reason": record.end_reason,
            "barge_ins": record.barge_ins, "malformed_frames": record.malformed_frames,
            "transcript": [{"role": role, "text": text} for role, text in record.transcript],  # set when the call ends
            "turns": [{"kind": t.kind, "interrupted": t.interrupted, "stages_ms": t.stages} for t in record.turns],
        })

    async def metrics(request: Request) -> Response:
        # ~3 ms for a few hundred series: rendered in a worker thread so no call's frames wait on a scrape.
        body, content_type = await anyio.to_thread.run_sync(runtime.observer.metrics.render)
        return Response(body, media_type=content_type)

    read_queues = guarded(runtime, "queues.read")
    read_transcripts = guarded(runtime, "transcripts.read")
    write_queues = guarded(runtime, "queues.write", idempotency)
    return [
        Route("/v1/queues", read_queues(list_queues), methods=["GET"]),
        Route("/v1/queues/{queue}/calls", read_queues(waiting_calls), methods=["GET"]),
        Route("/v1/handoffs/{handoff_id}", read_transcripts(get_handoff), methods=["GET"]),
        Route("/v1/handoffs/{handoff_id}/claim", write_queues(transition("claim")), methods=["POST"]),
        Route("/v1/handoffs/{handoff_id}/complete", write_queues(transition("complete")), methods=["POST"]),
        Route("/v1/calls", guarded(runtime, "calls.read")(active_calls), methods=["GET"]),
        Route("/v1/calls/{call_id}", read_transcripts(call_detail), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
