"""The outbound-call example against the local fake Rozper API: the script places one call
whose `url` is the agent's call-connect endpoint, and that URL answers with a media stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_runtime.carrier.instructions import ConnectStream, parse_rozper
from agent_runtime.carrier.signatures import sign
from agent_runtime.providers.base import Providers
from agent_runtime.providers.standin import StandInLLM, StandInSTT, StandInTTS
from callkit import SECRET, live_agent
from fakes.rozper_api import FakeRozperAPI, invalid_param

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "outbound" / "place_call.py"
KEY = "sk_test_outbound_0123456789abcdef"
TO, FROM = "+15559870002", "+15551230001"


@pytest.fixture
def fake() -> Iterator[FakeRozperAPI]:
    with FakeRozperAPI(api_key=KEY) as server:
        yield server


def run_example(fake: FakeRozperAPI, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ROZPER_API_KEY": KEY, "ROZPER_API_BASE": fake.base_url}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)


def test_the_script_places_one_call_pointed_at_the_agent(fake: FakeRozperAPI) -> None:
    done = run_example(fake, "--to", TO, "--from", FROM, "--agent-url", "https://rt.example.com/")
    assert done.returncode == 0, done.stderr
    [request] = fake.requests
    assert request.body == {"to": TO, "from": FROM, "url": "https://rt.example.com/rozper/voice", "record": False, "timeout": 60}
    [call_id] = fake.calls
    assert done.stdout.strip() == f"placed {call_id}: queued, {FROM} -> {TO}"
    assert KEY not in done.stdout + done.stderr


def test_a_refused_call_prints_the_typed_error(fake: FakeRozperAPI) -> None:
    fake.push(invalid_param("from", "not_a_rozper_number"))
    done = run_example(fake, "--to", TO, "--from", FROM, "--agent-url", "https://rt.example.com")
    assert done.returncode == 1 and len(fake.requests) == 1  # a 422 is not retried
    assert "422 invalid_param" in done.stderr and "from: not_a_rozper_number" in done.stderr


@pytest.mark.anyio
async def test_the_call_url_answers_with_voice_instructions(fake: FakeRozperAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    from place_call import place_call  # the example's own function

    providers = Providers(stt=StandInSTT(), llm=StandInLLM(), tts=StandInTTS())
    async with live_agent(providers) as agent:
        call = await place_call(TO, FROM, agent.config.base_url, {"ROZPER_API_KEY": KEY, "ROZPER_API_BASE": fake.base_url})
        # What Rozper does when the callee answers: POST the signed call-connect event to `url`.
        placed = fake.calls[call.id]
        event = json.dumps({"id": "evt_1", "type": "call.answered", "created": int(time.time()),
                            "data": {"call_id": call.id, "direction": "outbound", "from": FROM, "to": TO}}).encode()
        async with httpx.AsyncClient() as http:
            answer = await http.post(placed["url"], content=event, headers={
                "Content-Type": "application/json", "Rozper-Signature": sign(event, [SECRET], int(time.time()))})
    assert answer.status_code == 200
    document = parse_rozper(answer.json())
    assert any(isinstance(i, ConnectStream) for i in document.instructions)
