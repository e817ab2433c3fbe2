"""The ASGI app: call-connect (Rozper JSON / Twilio TwiML), the media WebSocket, health."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

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
from agent_runtime.server.idempotency import IdempotencyStore
from agent_runtime.runtime import Runtime
from agent_runtime.server.edge import check_rozper_body, check_stream_upgrade, check_twilio_form
from agent_runtime.webhooks.inbound import webhook_endpoint
from agent_runtime.webhooks.service import build_inbound

log = logging.getLogger("agent_runtime.server")

MAX_CONNECT_BODY = 64 * 1024


def error(status: int, code: str, message: str) -> JSONResponse:
    """Rozper's error envelope."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _connect_instructions(runtime: Runtime, context: CallContext, dialect: str, record: bool = False) -> VoiceInstructions:
    token = runtime.tokens.issue(context)
    # When the runtime closes the stream to hand the caller over, the carrier asks `action` what's next.
    action = f"{runtime.config.base_url}/{dialect}/after-stream/{context.call_id}"
    parameters = {"session_token": token, "call_id": context.call_id}
    if record:  # comes back in start.customParameters: the session records (call/recording.py)
        parameters["record"] = "true"
    stream = ConnectStream(url=runtime.config.media_url, parameters=parameters, action=action)
    return VoiceInstructions(instructions=[stream])


def _after_stream(runtime: Runtime, call_id: str) -> VoiceInstructions:
    """A pending handoff becomes the `transfer`; otherwise the call ends."""
    handoff = runtime.pending_transfers.pop(call_id, None)
    if handoff is None:
        return VoiceInstructions(instructions=[Hangup()])
    return VoiceInstructions(instructions=[Transfer(
        target=QueueTarget(queue=handoff.queue), whisper=handoff.summary, context={"handoff_id": handoff.id})])


def create_app(runtime: Runtime) -> Starlette:
    config = runtime.config

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "active_calls": len(runtime.active_calls)})

    async def rozper_voice(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_CONNECT_BODY:
            return error(413, "bad_request", "body too large")
        problem = check_rozper_body(config, request.headers, body)
        if problem:
            log.warning("call-connect refused: %s", problem)
            return error(401, "unauthorized", "signature verification failed")
        try:
            event = json.loads(body)
            data: dict[str, Any] = event["data"]
            call_id = str(data.get("call_id") or runtime.new_call_id())
        except (ValueError, KeyError, TypeError):
            return error(400, "bad_request", "body must be a call event with a data object")
        context = CallContext(
            call_id=call_id,
            caller=str(data.get("from", "unknown")),
            callee=str(data.get("to", "unknown")),
            direction=str(data.get("direction", "inbound")),
        )
        record = data.get("record") is True  # Rozper's `record` (§7.1): both legs to a stereo WAV
        return JSONResponse(render_rozper(_connect_instructions(runtime, context, "rozper", record)))

    async def rozper_after_stream(request: Request) -> Response:
        problem = check_rozper_body(config, request.headers, await request.body())
        if problem:
            log.warning("after-stream refused: %s", problem)
            return error(401, "unauthorized", "signature verification failed")
        return JSONResponse(render_rozper(_after_stream(runtime, request.path_params["call_id"])))

    async def twilio_after_stream(request: Request) -> Response:
        form = await request.form()
        params = {k: str(v) for k, v in form.multi_items()}
        if check_twilio_form(config, request.headers, config.base_url + request.url.path, params):
            return Response("forbidden", status_code=403)
        doc = _after_stream(runtime, request.path_params["call_id"])
        return Response(render_twiml(doc), media_type="application/xml")

    async def twilio_voice(request: Request) -> Response:
        form = await request.form()
        params = {k: str(v) for k, v in form.multi_items()}
        problem = check_twilio_form(config, request.headers, config.base_url + request.url.path, params)
        if problem:
            log.warning("twilio voice webhook refused: %s", problem)
            return Response("forbidden", status_code=403)
        context = CallContext(
            call_id=params.get("CallSid") or runtime.new_call_id(),
            caller=params.get("From", "unknown"),
            callee=params.get("To", "unknown"),
            direction=params.get("Direction", "inbound"),
        )
        return Response(render_twiml(_connect_instructions(runtime, context, "twilio")), media_type="application/xml")

    async def media(websocket: WebSocket) -> None:
        problem = check_stream_upgrade(config, websocket.headers)
        if problem or len(runtime.active_calls) >= config.max_calls:
            log.warning("media stream refused: %s", problem or "at max_calls")
            await websocket.close(code=1008)  # before accept: the upgrade is answered 403
            return
        await websocket.accept()

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

    return Starlette(
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
