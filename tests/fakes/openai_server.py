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
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_ID = "chatcmpl-fake"
CREATED = 1767225600

# ----------------------------------------------------------------- chunk builders (§5.1 shape)


def chunk(
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    id: str = DEFAULT_ID,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice, exactly as OpenAI sends it."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ],
        "usage": None,
    }


def role_chunk(**kw: Any) -> dict[str, Any]:
    return chunk({"role": "assistant", "content": None, "refusal": None}, **kw)


def text_chunk(text: str, **kw: Any) -> dict[str, Any]:
    return chunk({"content": text}, **kw)


def tool_call_fragment(
    index: int,
    *,
    id: str | None = None,
    name: str | None = None,
    arguments: str | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """One `delta.tool_calls[]` fragment. `id`/`name` belong on the first fragment only;
    `arguments=None` omits the key entirely (some servers do that for no-arg calls)."""
    call: dict[str, Any] = {"index": index}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if arguments is not None:
        function["arguments"] = arguments
    if function:
        call["function"] = function
    return chunk({"tool_calls": [call]}, **kw)


def finish_chunk(reason: str, **kw: Any) -> dict[str, Any]:
    return chunk({}, reason, **kw)


def usage_chunk(
    prompt_tokens: int = 10, completion_tokens: int = 5, *, id: str = DEFAULT_ID,
    model: str = DEFAULT_MODEL,
) -> dict[str, Any]:
    """The extra final chunk sent with `stream_options.include_usage`: no choices."""
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


@dataclass(frozen=True)
class ToolCall:
    """A scripted tool call: `fragments` are the argument pieces as streamed.

    `fragments=None` streams no `arguments` key at all; `()` streams only the usual empty
    first fragment `""`."""

    id: str
    name: str
    fragments: Sequence[str] | None = ()


def text_reply(pieces: Iterable[str] | str, *, usage: bool = True) -> list[dict[str, Any]]:
    """A plain text answer streamed as the given pieces (a str is split into words)."""
    if isinstance(pieces, str):
        pieces = re.findall(r"\S+\s*|\s+", pieces)
    out = [role_chunk(), *(text_chunk(p) for p in pieces), finish_chunk("stop")]
    return out + [usage_chunk()] if usage else out


def tool_call_reply(
    calls: Sequence[ToolCall], *, text: Iterable[str] = (), usage: bool = True
) -> list[dict[str, Any]]:
    """Optional text first, then each call's fragments (index groups 0, 1, …), then
    `finish_reason: tool_calls`."""
    out = [role_chunk(), *(text_chunk(p) for p in text)]
    for index, call in enumerate(calls):
        if call.fragments is None:
            out.append(tool_call_fragment(index, id=call.id, name=call.name))
            continue
        out.append(tool_call_fragment(index, id=call.id, name=call.name, arguments=""))
        out.extend(tool_call_fragment(index, arguments=f) for f in call.fragments)
    out.append(finish_chunk("tool_calls"))
    return out + [usage_chunk()] if usage else out


# ----------------------------------------------------------------------------- script types


@dataclass(frozen=True)
class Delay:
    """Put between chunks of a `ChatStream` to pause there (a slow model, a slow start)."""

    seconds: float


@dataclass(frozen=True)
class RawSSE:
    """Sent verbatim (for malformed-stream tests); include the trailing blank line yourself."""

    text: str


@dataclass(frozen=True)
class ChatStream:
    """A scripted streamed completion. `delay` is slept before every chunk; `done=False`
    ends the HTTP body without `data: [DONE]` (a dropped connection)."""

    chunks: Sequence[dict[str, Any] | Delay | RawSSE]
    delay: float = 0.0
    done: bool = True


@dataclass(frozen=True)
class HttpError:
    """An HTTP error answer, e.g. `HttpError(429, headers={"retry-after": "1"})`."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JSONResponse:
        body = self.body or openai_error(
            f"fake error {self.status}",
            "rate_limit_exceeded" if self.status == 429 else "server_error",
        )
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass(frozen=True)
class Stall:
    """Send `chunks` (possibly none: headers only), then hang until `seconds` pass or the
    server stops, then drop the connection without `[DONE]`."""

    chunks: Sequence[dict[str, Any]] = ()
    seconds: float = 3600.0


@dataclass(frozen=True)
class SpeechAudio:
    """A scripted speech answer: raw PCM bytes streamed in the given chunk sizes (cycled)."""

    pcm: bytes
    chunk_sizes: Sequence[int] = (1001, 4799, 3, 2400, 777)
    delay: float = 0.0


ChatScript = ChatStream | list | HttpError | Stall
SpeechScript = SpeechAudio | bytes | HttpError | Stall
TranscriptionScript = str | HttpError | Stall


@dataclass
class RecordedRequest:
    path: str
    body: dict[str, Any]  # the JSON body, or the multipart form's text fields
    headers: dict[str, str]
    files: dict[str, bytes] = field(default_factory=dict)


def openai_error(message: str, type_: str, param: str | None = None,
                 code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# --------------------------------------------------------------------------------- defaults


def echo_reply(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Default chat answer: "You said: <last user message>"."""
    last = ""
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            last = str(content or "")
            break
    return text_reply(f"You said: {last}".strip())


def tone_speech(request: dict[str, Any], sample_rate: int = 24000) -> bytes:
    """Default speech answer: a 300 Hz tone, ~60 ms per word, as 24 kHz int16 LE PCM."""
    words = max(1, len(str(request.get("input", "")).split()))
    n = int(sample_rate * 0.060 * words)
    t = np.arange(n) / sample_rate
    return (8000 * np.sin(2 * math.pi * 300 * t)).astype("<i2").tobytes()


def default_transcript(fields: dict[str, Any], audio: bytes) -> str:
    return "Hello."


# ------------------------------------------------------------------------------- validation


class InvalidRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


_ROLES = {"system", "developer", "user", "assistant", "tool"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def validate_chat_request(body: Any) -> None:
    """Raise `InvalidRequest` for what OpenAI's Chat Completions would reject with 400."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("[] is too short - 'messages'", "messages")
    if "stream_options" in body and not body.get("stream"):
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    tools = body.get("tools")
    if tools is not None:
        _validate_tools(tools)

    pending: dict[str, int] = {}  # tool_call_id -> index of the assistant message awaiting it
    for i, message in enumerate(messages):
        where = f"messages.[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object", where)
        role = message.get("role")
        if role not in _ROLES:
            raise InvalidRequest(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'tool', and 'developer'.", f"{where}.role")
        if pending and role != "tool":
            raise InvalidRequest(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}", f"{where}.role")
        content = message.get("content")
        if role in ("system", "developer", "user"):
            _require_content(content, where)
        elif role == "assistant":
            calls = message.get("tool_calls")
            if content is None and not calls:
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.content'.", f"{where}.content")
            if content is not None and not isinstance(content, (str, list)):
                raise InvalidRequest(f"Invalid type for '{where}.content'.", f"{where}.content")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    raise InvalidRequest(
                        f"[] is too short - '{where}.tool_calls'", f"{where}.tool_calls")
                for j, call in enumerate(calls):
                    pending[_validate_tool_call(call, f"{where}.tool_calls.[{j}]", pending)] = i
        else:  # tool
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise InvalidRequest(
                    f"Missing required parameter: '{where}.tool_call_id'.",
                    f"{where}.tool_call_id")
            _require_content(content, where)
            if call_id not in pending:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.", f"{where}.role")
            del pending[call_id]
    if pending:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(pending)}", "messages")


def _require_content(content: Any, where: str) -> None:
    if content is None:
        raise InvalidRequest(f"Missing required parameter: '{where}.content'.", f"{where}.content")
    if not isinstance(content, (str, list)):
        raise InvalidRequest(f"Invalid type for '{where}.content'.", f"{where}.content")


def _validate_tool_call(call: Any, where: str, pending: dict[str, int]) -> str:
    if not isinstance(call, dict):
        raise InvalidRequest(f"{where} must be an object", where)
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"Missing required parameter: '{where}.id'.", f"{where}.id")
    if call_id in pending:
        raise InvalidRequest(f"Duplicate tool_call id '{call_id}'.", f"{where}.id")
    if call.get("type") != "function":
        raise InvalidRequest(f"Missing required parameter: '{where}.type'.", f"{where}.type")
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(
            f"Missing required parameter: '{where}.function.name'.", f"{where}.function")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        raise InvalidRequest(
            f"Invalid type for '{where}.function.arguments': expected a string.",
            f"{where}.function.arguments")
    try:
        json.loads(arguments)
    except ValueError:
        raise InvalidRequest(
            f"Invalid '{where}.function.arguments': not valid JSON.",
            f"{where}.function.arguments") from None
    return call_id


def _validate_tools(tools: Any) -> None:
    if not isinstance(tools, list) or not tools:
        raise InvalidRequest("[] is too short - 'tools'", "tools")
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequest(f"Missing required parameter: '{where}.type'.", f"{where}.type")
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(
                f"Invalid '{where}.function.name': string does not match pattern.",
                f"{where}.function.name")
        params = function.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest(
                f"Invalid type for '{where}.function.parameters'.", f"{where}.function.parameters")


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
        return StreamingResponse(self._pcm(script), media_type="audio/pcm")

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
