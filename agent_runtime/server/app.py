"""The ASGI app: call-connect (Rozper JSON / Twilio TwiML), the media WebSocket, health."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from agent_runtime.agent.definition import CallContext
from agent_runtime.call.session import CallSession, HandshakeError
from agent_runtime.carrier.instructions import (
    ConnectStream, Hangup, QueueTarget, Transfer, VoiceInstructions, render_rozper, render_twiml,
)
from agent_runtime.server.api import api_routes
from agent_runtime.server.errors import EXCEPTION_HANDLERS, envelope
from agent_runtime.server.idempotency import IdempotencyStore
from agent_runtime.runtime import Runtime
from agent_runtime.server.edge import (
    BodyTooLarge, check_rozper_body, check_stream_upgrade, check_twilio_form, read_body, twilio_params, twilio_url,
)
from agent_runtime.webhooks.inbound import webhook_endpoint
from agent_runtime.webhooks.service import build_inbound

log = logging.getLogger("agent_runtime.server")

MAX_CONNECT_BODY = 64 * 1024
# Carrier call ids go into URLs and logs: Rozper's and Twilio's are short, plain tokens.
CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _connect_instructions(runtime: Runtime, context: CallContext, dialect: str, record: bool = False) -> VoiceInstructions:
    token = runtime.tokens.issue(context)
    # When the runtime closes the stream to hand the caller over, the carrier asks `action` what's next.
    action = f"{runtime.config.base_url}/{dialect}/after-stream/{quote(context.call_id, safe='')}"
    parameters = {"session_token": token, "call_id": context.call_id}
    if record:  # comes back in start.customParameters: the session records (call/recording.py)
        parameters["record"] = "true"
    stream = ConnectStream(url=runtime.config.media_url, parameters=parameters, action=action)
    return VoiceInstructions(instructions=[stream])


async def _after_stream(runtime: Runtime, call_id: str) -> VoiceInstructions:
    """The call's waiting handoff becomes the `transfer`; otherwise the call ends.

    Looked up in the queue store, not in memory: the process that stored the handoff may have
    restarted (or be another process) by the time the carrier asks, and the caller must still
    reach the queue. Asked twice, it answers the same transfer twice."""
    store = runtime.queue_store
    waiting = await store.waiting_for_call(call_id) if store is not None else []
    if not waiting:
        return VoiceInstructions(instructions=[Hangup()])
    handoff = waiting[-1]  # the latest, if the call somehow has several
    return VoiceInstructions(instructions=[Transfer(
        target=QueueTarget(queue=handoff.queue), whisper=handoff.summary, context={"handoff_id": handoff.id})])


def create_app(runtime: Runtime) -> Starlette:
    config = runtime.config

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "active_calls": len(runtime.active_calls)})

    async def rozper_checked(request: Request, what: str) -> tuple[dict[str, Any], Response | None]:
        """A signed Rozper event's `data`, or the error answer (413, 401, 400)."""
        try:
            body = await read_body(request, MAX_CONNECT_BODY)
        except BodyTooLarge:
            return {}, envelope(413, "bad_request", f"body over {MAX_CONNECT_BODY} bytes")
        problem = check_rozper_body(config, request.headers, body)
        if problem:
            log.warning("%s refused: %s", what, problem)
            return {}, envelope(401, "unauthorized", "signature verification failed")
        try:
            data = json.loads(body)["data"]
        except (ValueError, KeyError, TypeError):
            data = None
        if not isinstance(data, dict):
            return {}, envelope(400, "bad_request", "body must be a call event with a data object")
        return data, None

    async def rozper_voice(request: Request) -> Response:
        data, refused = await rozper_checked(request, "call-connect")
        if refused is not None:
            return refused
        call_id = str(data.get("call_id") or runtime.new_call_id())
        if not CALL_ID.fullmatch(call_id):
            return envelope(422, "invalid_param", "data.call_id: 1-128 letters, digits, or _ . : -")
        context = CallContext(
            call_id=call_id,
            caller=str(data.get("from", "unknown")),
            callee=str(data.get("to", "unknown")),
            direction=str(data.get("direction", "inbound")),
        )
        record = data.get("record") is True  # Rozper's `record` (§7.1): both legs to a stereo WAV
        return JSONResponse(render_rozper(_connect_instructions(runtime, context, "rozper", record)))

    async def rozper_after_stream(request: Request) -> Response:
        data, refused = await rozper_checked(request, "after-stream")
        if refused is not None:
            return refused
        call_id = request.path_params["call_id"]
        if data.get("call_id", call_id) != call_id:  # a signed event about another call must not read this one's transfer
            return envelope(400, "bad_request", "data.call_id does not match the call in the URL")
        return JSONResponse(render_rozper(await _after_stream(runtime, call_id)))

    async def twilio_checked(request: Request, what: str) -> tuple[dict[str, list[str]], Response | None]:
        if "x-twilio-signature" not in request.headers and not config.unsigned_allowed:
            log.warning("twilio %s refused: missing X-Twilio-Signature", what)
            return {}, envelope(403, "forbidden", "signature verification failed")
        try:
            params = twilio_params(await read_body(request, MAX_CONNECT_BODY))
        except BodyTooLarge:
            return {}, envelope(413, "bad_request", f"body over {MAX_CONNECT_BODY} bytes")
        problem = check_twilio_form(config, request.headers, twilio_url(config, request), params)
        if problem:
            log.warning("twilio %s refused: %s", what, problem)
            return params, envelope(403, "forbidden", "signature verification failed")
        return params, None

    async def twilio_after_stream(request: Request) -> Response:
        _, refused = await twilio_checked(request, "after-stream")
        if refused is not None:
            return refused
        doc = await _after_stream(runtime, request.path_params["call_id"])
        return Response(render_twiml(doc), media_type="application/xml")

    async def twilio_voice(request: Request) -> Response:
        params, refused = await twilio_checked(request, "voice webhook")
        if refused is not None:
            return refused

        def first(name: str, default: str) -> str:
            return (params.get(name) or [default])[0] or default

        call_id = first("CallSid", "") or runtime.new_call_id()
        if not CALL_ID.fullmatch(call_id):
            return envelope(422, "invalid_param", "CallSid: 1-128 letters, digits, or _ . : -")
        context = CallContext(
            call_id=call_id,
            caller=first("From", "unknown"),
            callee=first("To", "unknown"),
            direction=first("Direction", "inbound"),
        )
        return Response(render_twiml(_connect_instructions(runtime, context, "twilio")), media_type="application/xml")

    async def media(websocket: WebSocket) -> None:
        problem = check_stream_upgrade(config, websocket.headers)
        if problem is None and runtime.stream_slots >= config.max_calls:
            problem = "at max_calls"
        if problem:
            log.warning("media stream refused: %s", problem)
            await websocket.close(code=1008)  # before accept: the upgrade is answered 403
            return
        # The slot is taken here, before the first await: streams that have not reached `start`
        # count too, so concurrent upgrades cannot all slip under the limit.
        runtime.stream_slots += 1
        try:
            await websocket.accept()
            await run_stream(websocket)
        finally:
            runtime.stream_slots -= 1

    async def run_stream(websocket: WebSocket) -> None:
        async def receive() -> str | bytes | None:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return None
            return message.get("text") or message.get("bytes") or ""

        session = CallSession(runtime, receive, websocket.send_text)
        try:
            context = await session.open()
        except HandshakeError as exc:
            log.warning("media stream closed: %s", exc)
            await _close(websocket, 1008)
            return
        try:
            await session.run(context)
        except (WebSocketDisconnect, OSError):
            pass
        await _close(websocket, 1000)

    if config.allow_unsigned and not config.unsigned_allowed:
        log.warning("--allow-unsigned has no effect: carrier secrets are configured, so every request is verified")
    return Starlette(
        exception_handlers=EXCEPTION_HANDLERS,  # Starlette's own 404/405/500 in Rozper's envelope
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/rozper/voice", rozper_voice, methods=["POST"]),
            Route("/twilio/voice", twilio_voice, methods=["POST"]),
            Route("/rozper/webhooks", webhook_endpoint(build_inbound(runtime)), methods=["POST"]),
            Route("/rozper/after-stream/{call_id}", rozper_after_stream, methods=["POST"]),
            Route("/twilio/after-stream/{call_id}", twilio_after_stream, methods=["POST"]),
            WebSocketRoute("/media", media),
            *api_routes(runtime, IdempotencyStore(Path(config.data_dir) / "idempotency.sqlite3")),
        ]
    )


async def _close(websocket: WebSocket, code: int) -> None:
    try:
        await websocket.close(code=code)
    except (RuntimeError, OSError, WebSocketDisconnect):
        pass  # already closed by the peer
