"""Place an outbound phone call that Rozper connects to this agent.

    export ROZPER_API_KEY=sk_test_...            # your Rozper project key
    agent-runtime serve --public-url https://rt.example.com   # in another terminal
    python examples/outbound/place_call.py --to +15559870002 --from +15551230001 \
        --agent-url https://rt.example.com

Rozper answers at once with a queued call; when the callee picks up, Rozper POSTs the
call-connect request to `<agent-url>/rozper/voice` and the agent takes the conversation.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import anyio

from agent_runtime.carrier.rozper_api import Call, RozperClient, RozperError
from agent_runtime.config import ConfigError


async def place_call(to: str, from_: str, agent_url: str, environ: Mapping[str, str] = os.environ) -> Call:
    """One logical call attempt: the client retries safely under one Idempotency-Key."""
    async with RozperClient.from_env(environ) as rozper:
        return await rozper.calls.create(to=to, from_=from_, url=f"{agent_url.rstrip('/')}/rozper/voice")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--to", required=True, help="who to call, E.164 (e.g. +15559870002)")
    parser.add_argument("--from", dest="from_", required=True, help="your Rozper number, E.164")
    parser.add_argument("--agent-url", default=os.environ.get("AGENT_PUBLIC_URL", ""),
                        help="where `agent-runtime serve` is reachable (default: $AGENT_PUBLIC_URL)")
    args = parser.parse_args(argv)
    if not args.agent_url:
        parser.error("--agent-url (or AGENT_PUBLIC_URL) is required")
    try:
        call = anyio.run(place_call, args.to, args.from_, args.agent_url)
    except (ConfigError, ValueError, RozperError) as exc:
        print(f"could not place the call: {exc}", file=sys.stderr)
        for problem in getattr(exc, "param_errors", []):
            print(f"  {problem.get('param')}: {problem.get('reason')}", file=sys.stderr)
        return 1
    print(f"placed {call.id}: {call.status}, {call.from_} -> {call.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
