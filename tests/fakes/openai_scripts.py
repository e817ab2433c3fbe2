"""What a test can script the fake server to answer, and what it answers by default."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.responses import JSONResponse

from fakes.openai_chunks import text_reply

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
    """A scripted speech answer: bytes (raw PCM, or a whole file such as `wav_bytes(...)`)
    streamed in the given chunk sizes (cycled), so tests choose where HTTP chunks split."""

    pcm: bytes
    chunk_sizes: Sequence[int] = (1001, 4799, 3, 2400, 777)
    delay: float = 0.0
    media_type: str = "audio/pcm"


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


def wav_bytes(pcm: np.ndarray, sample_rate: int, *, software: bytes = b"Lavf58.76.100\x00") -> bytes:
    """A 16-bit mono WAV file with a `LIST/INFO` chunk (ISFT: the encoder) before `data`, as
    ffmpeg writes it. With the default `software` the header is 78 bytes: the S01 layout."""
    data = np.asarray(pcm, dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    isft = b"ISFT" + struct.pack("<I", len(software)) + software + b"\x00" * (len(software) % 2)
    listing = b"INFO" + isft
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"LIST" + struct.pack("<I", len(listing)) + listing
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body
