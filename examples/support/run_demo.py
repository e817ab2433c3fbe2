"""The support line end to end, on this machine, with no API key and no network.

    python examples/support/run_demo.py

Starts the server in-process with an SQLite queue store, places a simulated call (the
carrier simulator plays Rozper) whose caller says "Actually, can I talk to a human?", lets
the agent hand the call to the `support` queue, then asks the queue API over HTTP who is
waiting, and prints the waiting call with the agent's summary. A local webhook receiver
(standing in for your endpoint) verifies and prints the signed `agent.handoff` event that the
runtime's outbox delivered.

The speech-to-text and the model are scripted stand-ins (below), so the demo is the same
every time; swap in real engines with `agent-runtime serve --agent examples/support/agent.py:build_agent`.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_runtime.agent.loading import load_agent
from agent_runtime.audio.wav import read_wav_mono
from agent_runtime.carrier.signatures import SignatureError, verify
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.store import SqliteQueueStore
from agent_runtime.providers.base import TTS, LLMEvent, Providers, TextDelta, ToolCallRequest
from agent_runtime.runtime import CallRecord, Runtime
from agent_runtime.server.run import bind, running_server
from agent_runtime.sim.caller import CallResult, CallScript, Utterance, place_call
from agent_runtime.webhooks.service import build_outbox, delivering, settle

HERE = Path(__file__).resolve().parent
CALLER_WAV = HERE.parent / "audio" / "synthetic_talk_to_human.wav"
CALLER_SAYS = "Actually, can I talk to a human?"  # what the recording says (examples/audio/SOURCES.md)
HUMAN = re.compile(r"\b(human|person|someone|agent|representative|operator)\b", re.I)
ORDER = re.compile(r"\b([a-z])[- ]?(\d{1,4})\b", re.I)


class KnownTranscriptSTT:
    """Stand-in speech-to-text: the recording's known words (offline recognisers hear the
    synthetic voice badly, and the demo should not depend on luck)."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def transcribe(self, pcm: np.ndarray, sample_rate: int) -> str:
        return self.text


class ScriptedSupportLLM:
    """Stand-in model: a few keyword rules that use the tools the way a real model would."""

    async def stream(self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None) -> AsyncIterator[LLMEvent]:
        offered = {t["function"]["name"] for t in tools or ()}
        last = messages[-1]
        if last["role"] == "tool":  # answer from what the tool said
            yield TextDelta(f"I checked: {last['content']}. Anything else?")
            return
        said = " ".join(m["content"] for m in messages if m["role"] == "user" and m.get("content"))
        text = str(last.get("content") or "")
        if HUMAN.search(text) and "transfer_to_human" in offered:
            order = ORDER.search(said)
            about = f" about order {order[1].upper()}-{order[2]}" if order else ""
            checked = [m["content"] for m in messages if m["role"] == "tool"]
            done = f" Already checked: {'; '.join(checked)}." if checked else " Nothing was looked up yet."
            summary = f"Caller asked for a person{about}; they said: \"{text}\".{done}"
            args = {"queue": "support", "reason": "caller_requested_human", "summary": summary}
            yield ToolCallRequest(id="call_" + secrets.token_hex(4), name="transfer_to_human", arguments=json.dumps(args))
        elif (order := ORDER.search(text)) and "lookup_order" in offered:
            yield ToolCallRequest(id="call_" + secrets.token_hex(4), name="lookup_order",
                                  arguments=json.dumps({"order_number": f"{order[1]}-{order[2]}"}))
        else:
            yield TextDelta("I can check an order for you, or put you through to a colleague.")


def offline_tts() -> TTS:
    """eSpeak NG when the offline-speech extra is installed, else recorded stand-in speech."""
    try:
        from agent_runtime.providers.espeak_tts import EspeakTTS

        EspeakTTS.check_available()
        return EspeakTTS()
    except (ImportError, RuntimeError, OSError):
        from agent_runtime.providers.standin import StandInTTS

        return StandInTTS()


class WebhookReceiver:
    """Stands in for your webhook endpoint: verifies `Rozper-Signature` over the raw body,
    refuses anything unsigned, and keeps each event once (a retry carries the same id)."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self.events: dict[str, dict[str, Any]] = {}
        self.app = Starlette(routes=[Route("/hooks", self._hook, methods=["POST"])])

    async def _hook(self, request: Request) -> Response:
        body, header = await request.body(), request.headers.get("rozper-signature", "")
        try:
            verify(header, body, [self._secret], time.time())
        except SignatureError:
            return Response(status_code=400)
        event = json.loads(body)
        self.events.setdefault(event["id"], {**event, "signature": header})
        return Response(status_code=204)


@asynccontextmanager
async def serving(app: Starlette, sock: socket.socket) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield
        finally:
            server.should_exit = True


@dataclass
class DemoOutcome:
    record: CallRecord
    call: CallResult
    waiting: list[dict[str, Any]]  # GET /v1/queues/support/calls → data
    webhooks: list[dict[str, Any]] = field(default_factory=list)  # signed agent.handoff deliveries received


async def run_support_demo(data_dir: Path, caller_wav: Path = CALLER_WAV, say: Callable[[str], None] = print) -> DemoOutcome:
    secret = "rzp_whsec_demo_" + secrets.token_hex(16)  # the demo plays both the carrier and the agent
    api_key = "demo_queue_reader_" + secrets.token_hex(8)
    webhook_secret = "whsec_demo_" + secrets.token_hex(16)
    sock, hooks_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    receiver = WebhookReceiver(webhook_secret)
    config = ServerConfig(
        host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=(secret,), data_dir=str(data_dir),
        api_keys=((api_key, frozenset({"queues.read"})),),
        webhook_urls=(f"http://127.0.0.1:{hooks_sock.getsockname()[1]}/hooks",), webhook_secrets=(webhook_secret,),
    )
    store = SqliteQueueStore(data_dir / "queues.sqlite3")
    outbox = build_outbox(config)  # events are stored here first, then delivered signed
    agent = load_agent(f"{HERE / 'agent.py'}:build_agent")
    providers = Providers(stt=KnownTranscriptSTT(CALLER_SAYS), llm=ScriptedSupportLLM(), tts=offline_tts())
    runtime = Runtime(config, agent, providers, queue_store=store, emit=outbox.enqueue if outbox else None)
    audio, _ = read_wav_mono(caller_wav, 8000)
    # A Rozper carrier that negotiates the `transfer` extension: the handoff happens in-stream.
    script = CallScript(utterances=[Utterance(audio)], extensions=("stop_reason", "transfer", "hangup"))
    async with serving(receiver.app, hooks_sock), delivering(outbox, config.webhook_secrets):
        async with running_server(runtime, sock):
            say(f"placing a simulated call to {config.base_url}/rozper/voice …")
            call = await place_call(f"{config.base_url}/rozper/voice", script, secret)
            async with httpx.AsyncClient(base_url=config.base_url, headers={"Authorization": f"Bearer {api_key}"}) as api:
                response = await api.get("/v1/queues/support/calls")
                response.raise_for_status()
        if await settle(outbox, 5.0):
            say("some webhook deliveries are still pending")
    return DemoOutcome(record=runtime.finished_calls[-1], call=call, waiting=response.json()["data"],
                       webhooks=list(receiver.events.values()))


def print_outcome(outcome: DemoOutcome) -> None:
    print("\nconversation:")
    for role, text in outcome.record.transcript:
        print(f"  {'agent ' if role == 'assistant' else 'caller'}: {text}")
    print(f"call ended: {outcome.record.end_reason}; carrier stop reason: {outcome.call.stop_reason}")
    print("\nGET /v1/queues/support/calls:")
    for entry in outcome.waiting:
        print(f"  #{entry['position']} {entry['id']} from {entry['caller']}, waiting {entry['wait_s']} s ({entry['status']})")
        print(f"     reason:  {entry['reason']}\n     summary: {entry['summary']}")
    if not outcome.waiting:
        print("  (nobody is waiting)")
    for event in outcome.webhooks:
        if event["type"] == "agent.handoff":
            print(f"\nwebhook received, signature verified ({event['signature'][:24]}…):")
            print("  " + json.dumps({k: v for k, v in event.items() if k != "signature"}, indent=2).replace("\n", "\n  "))
    print("other webhooks: " + ", ".join(e["type"] for e in outcome.webhooks if e["type"] != "agent.handoff"))


def main() -> None:
    parser = argparse.ArgumentParser(description="support line demo: a simulated call handed to a human queue")
    parser.add_argument("--data-dir", type=Path, help="where the SQLite queue store goes (default: a temp dir)")
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="support_demo_"))
    print_outcome(anyio.run(run_support_demo, data_dir))
    print(f"\nqueue store: {data_dir / 'queues.sqlite3'}")


if __name__ == "__main__":
    main()
