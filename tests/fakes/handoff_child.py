"""A child process for tests/test_crash_safety.py: a real server with the SQLite queue store and
the outbox, one simulated call that hands off, and SIGKILL in the middle of the handoff.

    python handoff_child.py <data_dir> <openai_base_url> <webhook_url> [after_event|before_event]

The real order is Transfer.accept → queue store commit (the handoff and its event, together) →
relay: runtime.emit → outbox.enqueue → queue store marks the event announced. The kill comes:
- `after_event` (default): inside `emit`, just after the outbox committed `agent.handoff`,
  before the queue store heard it was announced; prints `handoff accepted <handoff_id> <event_id>`.
- `before_event`: just after the queue store committed, before anything reached the outbox;
  prints `handoff stored <handoff_id> <event_id>`.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import openai

from agent_runtime.agent.definition import Agent
from agent_runtime.config import ServerConfig
from agent_runtime.handoff.store import Handoff, HandoffEvent, SqliteQueueStore
from agent_runtime.providers.base import Providers
from agent_runtime.providers.espeak_tts import EspeakTTS
from agent_runtime.providers.openai_llm import OpenAILLM
from agent_runtime.providers.openai_stt import OpenAISTT
from agent_runtime.runtime import Runtime
from agent_runtime.server.run import bind, running_server
from agent_runtime.sim.caller import CallScript, Utterance, place_call
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.service import build_outbox, delivering

SIGNING_SECRET = "rzp_whsec_child_0123456789abcdef"
WEBHOOK_SECRETS = ("rzp_whsec_out_new_0123456789", "rzp_whsec_out_old_9876543210")


async def main(data_dir: Path, openai_url: str, webhook_url: str, kill_point: str) -> None:
    from callkit import caller_audio  # tests/ is on PYTHONPATH

    sock = bind("127.0.0.1", 0)
    config = ServerConfig(host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=(SIGNING_SECRET,),
                          data_dir=str(data_dir), webhook_urls=(webhook_url,), webhook_secrets=WEBHOOK_SECRETS)
    store = SqliteQueueStore(data_dir / "queues.sqlite3")
    outbox = build_outbox(config)
    assert outbox is not None
    client = openai.AsyncOpenAI(api_key="sk-test", base_url=openai_url, max_retries=0)
    providers = Providers(stt=OpenAISTT(client), llm=OpenAILLM(client, "gpt-4o-mini"), tts=EspeakTTS())

    async def emit(event_type: str, data: dict[str, Any], event_id: str | None = None) -> str:
        event_id = await outbox.enqueue(event_type, data, event_id)
        if event_type == "agent.handoff" and kill_point == "after_event":
            print(f"handoff accepted {data['handoff_id']} {event_id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as a crash or an OOM kill
        return event_id

    enqueue = store.enqueue

    async def enqueue_then_die(handoff: Handoff, announce: HandoffEvent | None = None) -> Handoff:
        stored = await enqueue(handoff, announce)
        if kill_point == "before_event":
            assert announce is not None
            print(f"handoff stored {handoff.id} {announce.id}", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # between the queue store's commit and the outbox's
        return stored

    store.enqueue = enqueue_then_die  # type: ignore[method-assign]

    agent = replace(Agent.from_prompts(), handoff_queues=("support",))
    runtime = Runtime(config, agent, providers, queue_store=store, emit=emit)
    script = CallScript(utterances=[Utterance(caller_audio())], extensions=("stop_reason", "transfer", "hangup"))
    # Retries every 0.2 s without a limit: the receiver refuses everything while this child lives, and
    # an exhausted schedule would mark agent.call_started dead before the kill, however long the call.
    retry_forever = Backoff(base_s=0.2, factor=1.0, max_retries=10_000)
    async with delivering(outbox, WEBHOOK_SECRETS, backoff=retry_forever, timeout_s=2.0, poll_interval_s=0.1):
        async with running_server(runtime, sock):
            print("serving", flush=True)
            await place_call(f"{config.base_url}/rozper/voice", script, SIGNING_SECRET)
    print("call ended without a handoff", flush=True)


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "after_event")
