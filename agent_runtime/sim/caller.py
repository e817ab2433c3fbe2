"""The carrier simulator: plays Rozper for one call over a real WebSocket.

It POSTs the signed call-connect request, follows the voice instructions, opens the signed
media stream, sends the caller's audio as 20 ms μ-law frames in real time, plays what it
receives in real time through a carrier-exact playback buffer (marks echoed when played,
`clear` honoured), records both legs and measures latency as the carrier sees it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field

import anyio
import httpx
import numpy as np
from websockets.asyncio.client import connect

from agent_runtime.audio.g711 import ulaw_decode, ulaw_encode
from agent_runtime.carrier.instructions import ConnectStream, parse_rozper
from agent_runtime.carrier.signatures import sign, sign_stream_url
from agent_runtime.sim.playback import FRAME_BYTES, SILENCE, PlaybackBuffer

FRAME_S = 0.02
VOICED_DBFS = -45.0  # a frame louder than this counts as the caller's speech (for latency)


@dataclass(slots=True)
class Utterance:
    """One thing the caller says (int16, 8 kHz), once the agent has been quiet for `gap_s`."""

    audio: np.ndarray
    gap_s: float = 0.6


@dataclass(slots=True)
class CallScript:
    utterances: list[Utterance]
    hangup_after_s: float = 1.0  # after the agent's last reply has played out
    max_duration_s: float = 60.0
    reply_timeout_s: float = 20.0  # give up waiting for the agent after this long
    caller: str = "+15551230001"
    callee: str = "+15559870002"


@dataclass(slots=True)
class CallResult:
    call_id: str
    caller_leg: bytearray = field(default_factory=bytearray)  # μ-law, one frame per tick
    agent_leg: bytearray = field(default_factory=bytearray)
    greeting_latency_ms: float | None = None
    turn_latencies_ms: list[float] = field(default_factory=list)
    media_messages: int = 0
    media_bytes: int = 0
    media_arrivals: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, bytes)
    marks_sent: int = 0  # marks the agent sent
    marks_echoed: int = 0
    clears: int = 0
    close_code: int | None = None
    hung_up: bool = False
    unexpected_messages: list[str] = field(default_factory=list)

    def stereo(self) -> np.ndarray:
        """Both legs as (samples, 2) int16: left the caller, right the agent as played."""
        n = min(len(self.caller_leg), len(self.agent_leg))
        return np.stack([ulaw_decode(bytes(self.caller_leg[:n])), ulaw_decode(bytes(self.agent_leg[:n]))], axis=1)


def _last_voiced_frame(audio: np.ndarray) -> int:
    frames = len(audio) // 160
    last = frames - 1
    for i in range(frames):
        chunk = audio[i * 160 : (i + 1) * 160].astype(np.float64)
        rms = np.sqrt(np.mean(chunk * chunk)) + 1e-9
        if 20 * np.log10(rms / 32768.0) > VOICED_DBFS:
            last = i
    return last


async def place_call(connect_url: str, script: CallScript, signing_secret: str | None = None) -> CallResult:
    """Places one simulated call against `connect_url` (the agent's call-connect endpoint)."""
    call_id = "CA_sim_" + secrets.token_hex(6)
    event = {
        "id": "evt_" + secrets.token_hex(8),
        "type": "call.answered",
        "created": int(time.time()),
        "data": {"call_id": call_id, "account_id": "AC_sim", "direction": "inbound",
                 "from": script.caller, "to": script.callee, "record": False},
    }
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if signing_secret:
        headers["Rozper-Signature"] = sign(body, [signing_secret], int(time.time()))
    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(connect_url, content=body, headers=headers)
    response.raise_for_status()
    document = parse_rozper(response.json())
    stream = next(i for i in document.instructions if isinstance(i, ConnectStream))
    ws_headers = {}
    if signing_secret:
        ws_headers["Rozper-Signature"] = sign_stream_url(stream.url, [signing_secret], int(time.time()))
    result = CallResult(call_id=call_id)
    async with connect(stream.url, additional_headers=ws_headers, max_size=2**20) as ws:
        await _run_stream(ws, stream, script, result)
        result.close_code = ws.close_code
    return result


async def _run_stream(ws, stream: ConnectStream, script: CallScript, result: CallResult) -> None:  # noqa: ANN001
    stream_sid = "MZ" + secrets.token_hex(16)
    playback = PlaybackBuffer()
    t_start = anyio.current_time()
    state = {"last_speech_sent": None, "agent_audio_since": None, "last_agent_audio": None}

    async def send(obj: dict) -> None:
        await ws.send(json.dumps(obj, separators=(",", ":")))

    await send({"event": "connected", "protocol": "Call", "version": "1.1.0"})
    await send({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"streamSid": stream_sid, "accountSid": "AC_sim", "callSid": result.call_id, "tracks": ["inbound"],
                  "customParameters": dict(stream.parameters), "from": script.caller, "to": script.callee,
                  "direction": "inbound", "extensions": ["stop_reason"],
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
    })

    async def receive_loop() -> None:
        async for message in ws:
            now = anyio.current_time()
            msg = json.loads(message)
            kind = msg.get("event")
            if kind == "media":
                payload = base64.b64decode(msg["media"]["payload"])
                playback.add_audio(payload)
                result.media_messages += 1
                result.media_bytes += len(payload)
                result.media_arrivals.append((now - t_start, len(payload)))
                if result.greeting_latency_ms is None:
                    result.greeting_latency_ms = (now - t_start) * 1000.0
                if state["last_speech_sent"] is not None:
                    result.turn_latencies_ms.append((now - state["last_speech_sent"]) * 1000.0)
                    state["last_speech_sent"] = None
            elif kind == "mark":
                result.marks_sent += 1
                for name in playback.add_mark(msg["mark"]["name"]):
                    await _echo(send, stream_sid, name, result)
            elif kind == "clear":
                result.clears += 1
                for name in playback.clear():
                    await _echo(send, stream_sid, name, result)
            else:
                result.unexpected_messages.append(str(kind))

    sequence = 2
    async with anyio.create_task_group() as tg:
        tg.start_soon(receive_loop)
        pending = list(script.utterances)
        speaking: tuple[bytes, int, int] | None = None  # (μ-law, next offset, last voiced frame offset)
        quiet_since = anyio.current_time()
        waiting_since = anyio.current_time()
        tick = 0
        while True:
            # Caller leg: the next frame of speech, or line silence.
            if speaking is not None:
                audio, offset, last_voiced = speaking
                frame = audio[offset : offset + FRAME_BYTES]
                frame += SILENCE[len(frame) :]
                if offset == last_voiced:
                    state["last_speech_sent"] = anyio.current_time()
                offset += FRAME_BYTES
                speaking = (audio, offset, last_voiced) if offset < len(audio) else None
                if speaking is None:
                    waiting_since = anyio.current_time()
            else:
                frame = SILENCE
            sequence += 1
            await send({"event": "media", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                        "media": {"track": "inbound", "chunk": str(tick + 1), "timestamp": str(tick * 20),
                                  "payload": base64.b64encode(frame).decode()}})
            result.caller_leg += frame
            # Agent leg: play 20 ms, echo marks that are now due.
            had_audio = playback.queued_bytes > 0
            played, due = playback.play_frame()
            result.agent_leg += played
            for name in due:
                await _echo(send, stream_sid, name, result)
            now = anyio.current_time()
            if had_audio:
                quiet_since = now
            agent_quiet_s = now - quiet_since
            if speaking is None:
                if pending and agent_quiet_s >= pending[0].gap_s and result.media_messages > 0 and quiet_since > waiting_since:
                    utterance = pending.pop(0)
                    mulaw = ulaw_encode(utterance.audio)
                    speaking = (mulaw, 0, _last_voiced_frame(utterance.audio) * FRAME_BYTES)
                elif not pending and quiet_since > waiting_since and agent_quiet_s >= script.hangup_after_s:
                    break  # the agent answered the last utterance and finished: hang up
                elif quiet_since <= waiting_since and now - waiting_since > script.reply_timeout_s:
                    break  # the agent never answered: hang up (the test will see no latency)
            if now - t_start > script.max_duration_s:
                break
            tick += 1
            await anyio.sleep_until(t_start + tick * FRAME_S)
        sequence += 1
        await send({"event": "stop", "sequenceNumber": str(sequence), "streamSid": stream_sid,
                    "stop": {"accountSid": "AC_sim", "callSid": result.call_id, "reason": "call_ended"}})
        result.hung_up = True
        await ws.close()
        tg.cancel_scope.cancel()


async def _echo(send, stream_sid: str, name: str, result: CallResult) -> None:  # noqa: ANN001
    result.marks_echoed += 1
    await send({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
