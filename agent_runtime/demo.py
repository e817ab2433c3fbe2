"""The demo: the server in-process on the embedded defaults, one simulated call, a recording."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from agent_runtime.agent.definition import Agent
from agent_runtime.agent.loading import load_agent
from agent_runtime.audio.wav import read_wav_mono, write_wav
from agent_runtime.config import ServerConfig
from agent_runtime.call.line_cache import warm_lines
from agent_runtime.providers.base import warm_up
from agent_runtime.providers.factory import build_providers
from agent_runtime.providers.settings import ProviderSettings
from agent_runtime.runtime import CallRecord, Runtime
from agent_runtime.server.run import bind, running_server
from agent_runtime.sim.caller import CallResult, CallScript, Utterance, place_call
from agent_runtime.webhooks.service import build_outbox, delivering, settle

EXAMPLES_AUDIO = Path(__file__).resolve().parents[1] / "examples" / "audio"
DEFAULT_CALLER_AUDIO = EXAMPLES_AUDIO / "caller_librivox_0880.wav"


def _env_list(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in os.environ.get(name, "").split(",") if part.strip())


async def run_demo(caller_wav: Path, recording: Path, agent: Agent | None = None) -> tuple[CallRecord, CallResult]:
    secret = "rzp_whsec_demo_" + secrets.token_hex(16)  # the demo plays both carrier and agent
    sock = bind("127.0.0.1", 0)
    # Outbound webhooks only when the environment asks for them; with no config the demo runs as is.
    config = ServerConfig(host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=(secret,),
                          webhook_urls=_env_list("AGENT_WEBHOOK_URLS"), webhook_secrets=_env_list("AGENT_WEBHOOK_SECRETS"),
                          data_dir=os.environ.get("AGENT_DATA_DIR", "data"))
    outbox = build_outbox(config)
    print("loading the speech and language engines …", flush=True)
    providers = build_providers(ProviderSettings.from_env(os.environ))
    runtime = Runtime(config, agent or load_agent(None), providers, emit=outbox.enqueue if outbox else None)
    await warm_up(providers)
    await warm_lines(runtime.lines, runtime.agent, providers.tts)
    print(f"engines: {providers.names}")
    audio, _ = read_wav_mono(caller_wav, 8000)
    script = CallScript(utterances=[Utterance(audio)], hangup_after_s=1.0)
    async with delivering(outbox, config.webhook_secrets):
        async with running_server(runtime, sock):
            print(f"placing a simulated call to {config.base_url}/rozper/voice …", flush=True)
            result = await place_call(f"{config.base_url}/rozper/voice", script, secret)
        if outbox is not None and await settle(outbox, 5.0):
            print(f"webhooks: some deliveries still pending in {outbox.path}; they resume on the next run")
    record = runtime.finished_calls[-1]
    write_wav(recording, result.stereo(), 8000)
    return record, result


def print_report(record: CallRecord, result: CallResult, recording: Path, hangover_ms: int) -> None:
    print("\nconversation:")
    for role, text in record.transcript:
        print(f"  {'agent ' if role == 'assistant' else 'caller'}: {text}")
    print(f"\ncall ended: {record.end_reason}; malformed frames: {record.malformed_frames}")
    if result.greeting_latency_ms is not None:
        print(f"greeting: first audio {result.greeting_latency_ms:.0f} ms after the stream opened")
    for i, ms in enumerate(result.turn_latencies_ms, 1):
        print(f"turn {i}: caller's last speech frame → first agent audio {ms:.0f} ms "
              f"(of which {hangover_ms} ms is the end-of-turn silence the runtime waits for)")
    for trace in record.turns:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in trace.stages.items() if k != "end_of_speech")
        origin = "the stream's start" if trace.kind == "greeting" else "the caller's end of speech"
        print(f"  {trace.kind} (generation {trace.generation}), ms from {origin}: {stages}")
    print(f"recording (left caller, right agent): {recording}")
