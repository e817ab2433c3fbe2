"""A local OpenAI-compatible HTTP server for tests: scripted, strict, and real over the wire.

Tests point the real `openai` client at `FakeOpenAIServer.base_url`, so HTTP, SSE parsing and
the SDK's types are exercised. Each endpoint pops scripted responses from its queue, and when
the queue is empty answers with a default built by a callable (chat echoes the last user
message), so end-to-end tests never run dry. Every request is recorded in `.requests`, and chat
requests are validated as strictly as OpenAI does (roles, tool-call/tool-message pairing,
arguments JSON), answering 400 with an OpenAI-style error body when invalid.

    with FakeOpenAIServer() as server:
        server.push_chat(text_reply(["Hel", "lo!"]))
        client = server.client()
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# Re-exported: tests import every helper from this one module.
from fakes.openai_chunks import (  # noqa: F401
    CREATED, DEFAULT_ID, DEFAULT_MODEL, ToolCall, chunk, finish_chunk, role_chunk, text_chunk, text_reply,
    tool_call_fragment, tool_call_reply, usage_chunk,
)
from fakes.openai_scripts import (  # noqa: F401
    ChatScript, ChatStream, Delay, HttpError, RawSSE, RecordedRequest, SpeechAudio, SpeechScript, Stall,
    TranscriptionScript, default_transcript, echo_reply, openai_error, tone_speech, wav_bytes,
)
from fakes.openai_validation import InvalidRequest, validate_chat_request  # noqa: F401

# ----------------------------------------------------------------------------------- server


class FakeOpenAIServer:
    """Starlette app served by uvicorn on 127.0.0.1:<ephemeral> in a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chat: deque[ChatScript] = deque()
        self._speech: deque[SpeechScript] = deque()
        self._transcriptions: deque[TranscriptionScript] = deque()
        self.requests: list[RecordedRequest] = []
        self.chat_default: Callable[[dict[str, Any]], list[dict[str, Any]]] = echo_reply
        self.speech_default: Callable[[dict[str, Any]], bytes] = tone_speech
        self.transcription_default: Callable[[dict[str, Any], bytes], str] = default_transcript
        self._closing = threading.Event()
        self.open_streams = 0  # SSE responses still being written (a client that hung up closes its one)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat_completions, methods=["POST"]),
            Route("/v1/audio/speech", self._speech_endpoint, methods=["POST"]),
            Route("/v1/audio/transcriptions", self._transcriptions_endpoint, methods=["POST"]),
        ])

    # -- lifecycle

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAIServer:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
            timeout_graceful_shutdown=1, loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._closing.clear()
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server failed to start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._closing.set()  # ends stalls and delays at once
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget scripts, recorded requests and custom defaults (between tests)."""
        with self._lock:
            self._chat.clear()
            self._speech.clear()
            self._transcriptions.clear()
            self.requests.clear()
        self.chat_default = echo_reply
        self.speech_default = tone_speech
        self.transcription_default = default_transcript

    def client(self, **kwargs: Any):  # -> openai.AsyncOpenAI
        """An `AsyncOpenAI` pointed here; no retries unless asked, so errors surface."""
        import openai

        kwargs.setdefault("max_retries", 0)
        return openai.AsyncOpenAI(api_key="sk-test", base_url=self.base_url, **kwargs)

    # -- scripting

    def push_chat(self, *scripts: ChatScript) -> None:
        """Queue answers for the next chat requests; a list of chunks means a `ChatStream`."""
        with self._lock:
            self._chat.extend(scripts)

    def push_speech(self, *scripts: SpeechScript) -> None:
        with self._lock:
            self._speech.extend(scripts)

    def push_transcription(self, *scripts: TranscriptionScript) -> None:
        with self._lock:
            self._transcriptions.extend(scripts)

    def chat_requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.body for r in self.requests if r.path.endswith("/chat/completions")]

    def _pop(self, queue: deque) -> Any:
        with self._lock:
            return queue.popleft() if queue else None

    def _record(self, request: Request, body: dict[str, Any],
                files: dict[str, bytes] | None = None) -> None:
        with self._lock:
            self.requests.append(
                RecordedRequest(request.url.path, body, dict(request.headers), files or {}))

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the server is stopping; False if it is."""
        end = time.monotonic() + seconds
        while not self._closing.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, 0.05))
        return False

    # -- endpoints

    async def _chat_completions(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(openai_error(
                "We could not parse the JSON body of your request.", "invalid_request_error"),
                status_code=400)
        self._record(request, body if isinstance(body, dict) else {"_raw": body})
        try:
            validate_chat_request(body)
        except InvalidRequest as exc:
            return JSONResponse(
                openai_error(str(exc), "invalid_request_error", exc.param), status_code=400)

        script = self._pop(self._chat)
        if script is None:
            script = ChatStream(self.chat_default(body))
        elif isinstance(script, list):
            script = ChatStream(script)
        if isinstance(script, HttpError):
            return script.response()
        if isinstance(script, Stall):
            return StreamingResponse(self._stall_sse(script), media_type="text/event-stream")
        if not body.get("stream"):
            return JSONResponse(_aggregate(script.chunks, body))
        return StreamingResponse(self._sse(script, body), media_type="text/event-stream")

    async def _sse(self, script: ChatStream, body: dict[str, Any]) -> AsyncIterator[bytes]:
        self.open_streams += 1
        try:
            async for piece in self._sse_chunks(script, body):
                yield piece
        finally:
            self.open_streams -= 1

    async def _sse_chunks(self, script: ChatStream, body: dict[str, Any]) -> AsyncIterator[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        for item in script.chunks:
            if script.delay and not await self._sleep(script.delay):
                return
            if isinstance(item, Delay):
                if not await self._sleep(item.seconds):
                    return
                continue
            if isinstance(item, RawSSE):
                yield item.text.encode()
                continue
            if not item.get("choices") and item.get("usage") and not include_usage:
                continue  # OpenAI sends the usage chunk only when asked
            yield b"data: " + json.dumps(item).encode() + b"\n\n"
        if script.done:
            yield b"data: [DONE]\n\n"

    async def _stall_sse(self, script: Stall) -> AsyncIterator[bytes]:
        for item in script.chunks:
            yield b"data: " + json.dumps(item).encode() + b"\n\n"
        yield b": stalled\n\n"  # an SSE comment: flushes headers without an event
        await self._sleep(script.seconds)

    async def _speech_endpoint(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse(openai_error("invalid JSON body", "invalid_request_error"), 400)
        self._record(request, body)
        for key in ("model", "input", "voice"):
            if not body.get(key):
                return JSONResponse(openai_error(
                    f"Missing required parameter: '{key}'.", "invalid_request_error", key), 400)
        if len(body["input"]) > 4096:
            return JSONResponse(openai_error(
                "input is longer than 4096 characters", "invalid_request_error", "input"), 400)
        if body.get("response_format", "mp3") != "pcm":
            return JSONResponse(openai_error(
                "this fake only speaks response_format='pcm'", "invalid_request_error",
                "response_format"), 400)

        script = self._pop(self._speech)
        if script is None:
            script = SpeechAudio(self.speech_default(body))
        elif isinstance(script, bytes):
            script = SpeechAudio(script)
        if isinstance(script, HttpError):
            return script.response()
        if isinstance(script, Stall):
            return StreamingResponse(self._stall_bytes(script), media_type="audio/pcm")
        return StreamingResponse(self._pcm(script), media_type=script.media_type)

    async def _pcm(self, script: SpeechAudio) -> AsyncIterator[bytes]:
        pos = 0
        for size in itertools.cycle(script.chunk_sizes):
            if pos >= len(script.pcm):
                return
            if script.delay and not await self._sleep(script.delay):
                return
            yield script.pcm[pos:pos + size]
            pos += size

    async def _stall_bytes(self, script: Stall) -> AsyncIterator[bytes]:
        yield b""
        await self._sleep(script.seconds)

    async def _transcriptions_endpoint(self, request: Request) -> Response:
        async with request.form() as form:
            fields: dict[str, Any] = {}
            files: dict[str, bytes] = {}
            for key, value in form.multi_items():
                if isinstance(value, str):
                    fields[key] = value
                else:
                    files[key] = await value.read()
                    fields[key] = {"filename": value.filename,
                                   "content_type": value.content_type, "size": len(files[key])}
        self._record(request, fields, files)
        if not fields.get("model"):
            return JSONResponse(openai_error(
                "Missing required parameter: 'model'.", "invalid_request_error", "model"), 400)
        upload = fields.get("file")
        if not isinstance(upload, dict) or "." not in (upload.get("filename") or ""):
            return JSONResponse(openai_error(
                "Missing file, or its filename has no extension.", "invalid_request_error",
                "file"), 400)

        script = self._pop(self._transcriptions)
        if script is None:
            script = self.transcription_default(fields, files["file"])
        if isinstance(script, HttpError):
            return script.response()
        if isinstance(script, Stall):
            await self._sleep(script.seconds)
            return JSONResponse(openai_error("stalled", "server_error"), 504)
        return JSONResponse({"text": script, "usage": {"type": "duration", "seconds": 1}})


def _aggregate(chunks: Sequence[Any], body: dict[str, Any]) -> dict[str, Any]:
    """A non-streamed `chat.completion` equivalent to the scripted chunks."""
    text = ""
    calls: dict[int, dict[str, Any]] = {}
    finish = "stop"
    for item in chunks:
        if not isinstance(item, dict):
            continue
        for choice in item.get("choices") or []:
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for frag in delta.get("tool_calls") or []:
                call = calls.setdefault(frag["index"], {
                    "id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                call["id"] = call["id"] or frag.get("id", "")
                fn = frag.get("function") or {}
                call["function"]["name"] = call["function"]["name"] or fn.get("name", "")
                call["function"]["arguments"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {
        "id": DEFAULT_ID, "object": "chat.completion", "created": CREATED,
        "model": body.get("model", DEFAULT_MODEL),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
