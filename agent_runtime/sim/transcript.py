"""The conversation of a simulated call, as the agent recorded it (GET /v1/calls/{call_id})."""

from __future__ import annotations

import anyio
import httpx


async def fetch_transcript(connect_url: str, call_id: str, api_key: str | None) -> str:
    """The transcript as printable lines, or a line saying how to get it.

    Needs a runtime API key with the transcripts.read scope (AGENT_API_KEYS on the server).
    """
    if not api_key:
        return "transcript: set AGENT_API_KEY to a key with the transcripts.read scope to print it"
    base = connect_url.split("/rozper/")[0].split("/twilio/")[0]
    async with httpx.AsyncClient(timeout=5.0) as http:
        for _ in range(20):  # the agent records the transcript as the call ends, just after our `stop`
            response = await http.get(f"{base}/v1/calls/{call_id}", headers={"Authorization": f"Bearer {api_key}"})
            if response.status_code != 200:
                return f"transcript: the agent answered {response.status_code} ({response.text[:200]})"
            call = response.json()
            if call["end_reason"] is not None:
                lines = [f"  {'agent ' if t['role'] == 'assistant' else 'caller'}: {t['text']}" for t in call["transcript"]]
                return "conversation:\n" + "\n".join(lines)
            await anyio.sleep(0.1)
    return "transcript: the call has not ended on the agent's side yet"
