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
from collections import deque

import anyio
import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent_runtime.audio.g711 import ulaw_decode, ulaw_encode
from agent_runtime.carrier.instructions import ConnectStream, parse_rozper
from agent_runtime.carrier.signatures import sign, sign_stream_url
from agent_runtime.sim.playback import SILENCE, PlaybackBuffer
from agent_runtime.sim.script import CallResult, CallScript, Utterance

FRAME_S = 0.02
VOICED_DBFS = -45.0  # a frame louder than this counts as the caller's speech (for latency)

__all__ = ["CallResult", "CallScript", "Utterance", "place_call"]


def _frame_dbfs(frame: np.ndarray) -> float:
    x = frame.astype(np.float64)
    return 10 * np.log10(np.mean(x * x) / 32768.0**2 + 1e-12)


def _voiced_range(audio: np.ndarray) -> tuple[int, int]:
    """Indices of the first and last 20 ms frames louder than VOICED_DBFS."""
    voiced = [i for i in range(len(audio) // 160) if _frame_dbfs(audio[i * 160 : (i + 1) * 160]) > VOICED_DBFS]
    return (voiced[0], voiced[-1]) if voiced else (0, max(0, len(audio) // 160 - 1))


def _scaled(utterance: Utterance) -> np.ndarray:
    audio = utterance.audio
    if utterance.level_dbfs is None:
        return audio
    first, last = _voiced_range(audio)
    speech = audio[first * 160 : (last + 1) * 160].astype(np.float64)
    gain = 10 ** ((utterance.level_dbfs - 10 * np.log10(np.mean(speech**2) / 32768.0**2 + 1e-12)) / 20)
    return np.clip(audio * gain, -32768, 32767).astype(np.int16)


async def place_call(
    connect_url: str, script: CallScript, signing_secret: str | None = None, http: httpx.AsyncClient | None = None
) -> CallResult:
    """Places one simulated call against `connect_url` (the agent's call-connect endpoint).

    `http`: a client to reuse (a load generator placing hundreds of calls shares one; building
    an httpx client loads a TLS context, ~20 ms of CPU). By default each call makes its own.
    """
    call_id = "CA_sim_" + secrets.token_hex(6)
    event = {
        "id": "evt_" + secrets.token_hex(8), "type": "call.answered", "created": int(time.time()),
        "data": {"call_id": call_id, "account_id": "AC_sim", "direction": "inbound",
                 "from": script.caller, "to": script.callee, "record": script.record},
    }
    body = json.dumps(event, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if signing_secret:
        headers["Rozper-Signature"] = sign(body, [signing_secret], int(time.time()))
    if http is not None:
        response = await http.post(connect_url, content=body, headers=headers, timeout=10.0)
    else:
        async with httpx.AsyncClient(timeout=10.0) as own:
            response = await own.post(connect_url, content=body, headers=headers)
    response.raise_for_status()
    document = parse_rozper(response.json())
    stream = next(i for i in document.instructions if isinstance(i, ConnectStream))
    ws_headers = {}
    if signing_secret:
        ws_headers["Rozper-Signature"] = sign_stream_url(stream.url, [signing_secret], int(time.time()))
    result = CallResult(call_id=call_id)
    async with connect(stream.url, additional_headers=ws_headers, max_size=2**20, close_timeout=1) as ws:
        await _SimulatedCarrier(ws, stream, script, result).run()
        result.close_code = ws.close_code
    if not result.hung_up and result.close_code is not None and stream.action:
        # The agent closed the stream: the carrier asks `action` what to do next (§7.2).
        action_body = json.dumps({"id": "evt_" + secrets.token_hex(8), "type": "stream.ended", "created": int(time.time()),
                                  "data": {"call_id": call_id}}, separators=(",", ":")).encode()
        action_headers = {"Content-Type": "application/json"}
        if signing_secret:
            action_headers["Rozper-Signature"] = sign(action_body, [signing_secret], int(time.time()))
        if http is not None:
            answer = await http.post(stream.action, content=action_body, headers=action_headers, timeout=10.0)
        else:
            async with httpx.AsyncClient(timeout=10.0) as own:
                answer = await own.post(stream.action, content=action_body, headers=action_headers)
        result.after_stream = answer.json()
    return result


class _SimulatedCarrier:
    def __init__(self, ws: ClientConnection, stream: ConnectStream, script: CallScript, result: CallResult) -> None:
        self.ws = ws
        self.stream = stream
        self.script = script
        self.result = result
        self.stream_sid = "MZ" + secrets.token_hex(16)
        self.playback = PlaybackBuffer()
        self.tick = 0
        self.sequence = 0
        self.last_speech_sent: float | None = None
        self.transferred = False
        self.closed_by_agent = False
        self.rng = np.random.default_rng(script.seed)
        delay = script.echo_delay_ms or 0
        self._media_prefix = f'{{"event":"media","streamSid":"{self.stream_sid}","media":{{"track":"inbound","chunk":"'
        self._silence_b64 = base64.b64encode(SILENCE).decode()
        self.echo_line: deque[np.ndarray] = deque([np.zeros(160, np.int16)] * (delay // 20 + 2), maxlen=delay // 20 + 2)

    async def send(self, obj: dict) -> None:
        if obj["event"] != "connected":
            self.sequence += 1
            obj["sequenceNumber"] = str(self.sequence)
        try:
            await self.ws.send(json.dumps(obj, separators=(",", ":")))
        except ConnectionClosed:
            self.closed_by_agent = True  # the agent closed the stream; the main loop stops

    async def send_media(self, frame: bytes) -> None:
        """One inbound media frame. Built by concatenation (same JSON as `send` would produce):
        this runs 50 times a second per call, and json.dumps there made the load client the
        bottleneck of capacity benchmarks."""
        self.sequence += 1
        payload = self._silence_b64 if frame is SILENCE else base64.b64encode(frame).decode()
        await self.ws.send(
            f'{self._media_prefix}{self.tick + 1}","timestamp":"{self.tick * 20}","payload":"{payload}"}},'
            f'"sequenceNumber":"{self.sequence}"}}'
        )

    async def echo_mark(self, name: str) -> None:
        self.result.marks_echoed += 1
        self.result.timeline.append((self.tick, "echo", name))
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def receive_loop(self, t_start: float) -> None:
        try:
            await self._receive_messages(t_start)
        except ConnectionClosed:
            pass  # closed with an error code (e.g. 1008, a refused stream): the close code tells
        self.closed_by_agent = True  # the agent closed the stream (e.g. to transfer via `action`)

    async def _receive_messages(self, t_start: float) -> None:
        result = self.result
        async for message in self.ws:
            now = anyio.current_time()
            msg = json.loads(message)
            kind = msg.get("event")
            if kind == "media":
                payload = base64.b64decode(msg["media"]["payload"])
                self.playback.add_audio(payload)
                result.media_messages += 1
                result.media_bytes += len(payload)
                result.media_arrivals.append((now - t_start, len(payload)))
                result.timeline.append((self.tick, "media", str(len(payload))))
                if result.greeting_latency_ms is None:
                    result.greeting_latency_ms = (now - t_start) * 1000.0
                if self.last_speech_sent is not None:
                    result.turn_latencies_ms.append((now - self.last_speech_sent) * 1000.0)
                    self.last_speech_sent = None
            elif kind == "mark":
                result.marks_sent += 1
                result.timeline.append((self.tick, "mark", msg["mark"]["name"]))
                for name in self.playback.add_mark(msg["mark"]["name"]):
                    await self.echo_mark(name)
            elif kind == "transfer":
                result.transfers.append(msg["transfer"])
                result.transfer_times.append(now)
                answer = {"status": self.script.transfer_answer}
                if self.script.transfer_answer != "accepted":
                    answer["error"] = "queue_not_found"
                await self.send({"event": "transfer", "streamSid": self.stream_sid, "transfer": answer})
                if self.script.transfer_answer == "accepted":
                    self.transferred = True
            elif kind == "hangup":
                result.hangups.append(msg["hangup"])
                result.timeline.append((self.tick, "hangup", str(msg["hangup"].get("reason", ""))))
            elif kind == "clear":
                result.clears += 1
                result.timeline.append((self.tick, "clear", ""))
                for name in self.playback.clear():
                    await self.echo_mark(name)
            else:
                result.unexpected_messages.append(str(kind))

    def caller_frame(self, speech: np.ndarray | None) -> bytes:
        """The inbound frame: the caller's speech, plus echo of what was played, plus line noise."""
        script = self.script
        if speech is None and script.echo_delay_ms is None and script.noise_dbfs is None:
            return SILENCE
        mix = np.zeros(160, np.float64) if speech is None else speech.astype(np.float64)
        if script.echo_delay_ms is not None:
            line = np.concatenate(self.echo_line)
            offset = len(line) - 160 - script.echo_delay_ms * 8
            mix += line[offset : offset + 160] * 10 ** (script.echo_gain_db / 20)
        if script.noise_dbfs is not None:
            mix += self.rng.normal(0.0, 32768.0 * 10 ** (script.noise_dbfs / 20), 160)
        return ulaw_encode(np.clip(mix, -32768, 32767).astype(np.int16))

    async def run(self) -> None:
        script, result = self.script, self.result
        await self.send({"event": "connected", "protocol": "Call", "version": "1.1.0"})
        await self.send({
            "event": "start", "streamSid": self.stream_sid,
            "start": {"streamSid": self.stream_sid, "accountSid": "AC_sim", "callSid": result.call_id,
                      "tracks": ["inbound"], "customParameters": dict(self.stream.parameters),
                      "from": script.caller, "to": script.callee, "direction": "inbound",
                      "extensions": list(script.extensions),
                      "mediaFormat": dict(zip(("encoding", "sampleRate", "channels"), script.media_format))},
        })
        t_start = result.started_at = anyio.current_time()
        pending = list(script.utterances)
        dtmf = sorted(script.dtmf)
        raw_frames = sorted(script.raw_frames, key=lambda item: item[0])
        speaking: tuple[np.ndarray, int, int, int] | None = None  # (audio, next frame, first, last voiced)
        quiet_since = waiting_since = t_start
        reply_started: float | None = None  # when the agent's current reply began playing
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.receive_loop, t_start)
            while True:
                if self.closed_by_agent:
                    tg.cancel_scope.cancel()
                    return
                now = anyio.current_time()
                speech = None
                if speaking is not None:
                    audio, index, first, last = speaking
                    speech = audio[index * 160 : (index + 1) * 160]
                    speech = np.pad(speech, (0, 160 - len(speech)))
                    if index == first:
                        result.speech_onset_ticks.append(self.tick)
                    if index == last:
                        self.last_speech_sent = now
                    speaking = (audio, index + 1, first, last) if (index + 1) * 160 < len(audio) else None
                    if speaking is None:
                        waiting_since = now
                        reply_started = None
                frame = self.caller_frame(speech)
                await self.send_media(frame)
                result.caller_leg += frame
                result.frames_sent += 1
                while dtmf and dtmf[0][0] <= self.tick * FRAME_S:
                    digit = dtmf.pop(0)[1]
                    result.dtmf_sent.append((anyio.current_time(), digit))
                    waiting_since = now  # a key is caller input: the agent's answer to it is awaited
                    await self.send({"event": "dtmf", "streamSid": self.stream_sid,
                                     "dtmf": {"track": "inbound_track", "digit": digit}})
                while raw_frames and raw_frames[0][0] <= self.tick * FRAME_S:
                    await self.ws.send(raw_frames.pop(0)[1])  # garbage on purpose: a fuzzing test's frames
                # Agent leg: play 20 ms, echo the marks now due.
                had_audio = self.playback.queued_bytes > 0
                played, due = self.playback.play_frame()
                result.agent_leg += played
                if self.script.echo_delay_ms is not None:  # the echo line is only read when echo is on
                    self.echo_line.append(ulaw_decode(played))
                for name in due:
                    await self.echo_mark(name)
                if had_audio:
                    quiet_since = now
                    if reply_started is None:
                        reply_started = now
                if speaking is None:
                    heard_reply = quiet_since > waiting_since
                    nxt = pending[0] if pending else None
                    if nxt is not None and nxt.after_previous_s is not None:
                        start = now - waiting_since >= nxt.after_previous_s
                    elif nxt is not None and nxt.barge_in_after_s is not None:
                        start = reply_started is not None and now - reply_started >= nxt.barge_in_after_s
                    else:
                        start = nxt is not None and heard_reply and now - quiet_since >= nxt.gap_s
                    if start and nxt is not None:
                        pending.pop(0)
                        audio = _scaled(nxt)
                        first, last = _voiced_range(audio)
                        speaking = (audio, 0, first, last)
                    elif not pending and not dtmf and heard_reply and now - quiet_since >= script.hangup_after_s:
                        break  # the agent answered the last utterance and finished: hang up
                    elif not heard_reply and now - waiting_since > script.reply_timeout_s:
                        break  # the agent never answered: hang up
                if self.transferred:
                    break  # the caller is bridged to the queue: the stream stops with reason transferred
                if script.drop_after_s is not None and now - t_start >= script.drop_after_s:
                    self.ws.transport.abort()  # a dead line: no stop, no close frame
                    result.hung_up = False
                    tg.cancel_scope.cancel()
                    return
                if now - t_start > script.max_duration_s:
                    break
                if script.stop_after_s is not None and now - t_start >= script.stop_after_s:
                    break  # the caller hangs up mid-whatever
                self.tick += 1
                await anyio.sleep_until(t_start + self.tick * FRAME_S)
            result.stop_reason = "transferred" if self.transferred else "call_ended"
            result.stop_sent_at = time.time()
            await self.send({"event": "stop", "streamSid": self.stream_sid,
                             "stop": {"accountSid": "AC_sim", "callSid": result.call_id, "reason": result.stop_reason}})
            result.hung_up = True
            await self.ws.close()
            tg.cancel_scope.cancel()
