"""agent-runtime serve | call | demo | bench."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

import anyio

from agent_runtime.config import ALLOW_UNSIGNED_HELP, ConfigError
from agent_runtime.observability.logs import configure_logging


def _run(main, *args) -> None:  # noqa: ANN001
    backend_options = {"use_uvloop": True} if sys.platform != "win32" else {}
    anyio.run(main, *args, backend="asyncio", backend_options=backend_options)


def cmd_serve(args: argparse.Namespace) -> None:
    from agent_runtime.config import ServerConfig
    from agent_runtime.handoff.store import SqliteQueueStore
    from agent_runtime.call.line_cache import warm_lines
    from agent_runtime.providers.base import warm_up
    from agent_runtime.providers.factory import build_providers
    from agent_runtime.providers.settings import ProviderSettings
    from agent_runtime.runtime import Runtime
    from agent_runtime.server.run import bind, uvicorn_server
    from agent_runtime.webhooks.service import build_outbox, delivering

    config = ServerConfig.from_env(
        os.environ, host=args.host, port=args.port, public_url=args.public_url,
        allow_unsigned=args.allow_unsigned or None, max_calls=args.max_calls,
    )
    agent = _agent(args)
    providers = build_providers(ProviderSettings.from_env(os.environ))
    queues = SqliteQueueStore(Path(config.data_dir) / "queues.sqlite3")  # handoffs survive restarts
    outbox = build_outbox(config)  # None unless AGENT_WEBHOOK_URLS is set
    runtime = Runtime(config, agent, providers, queue_store=queues, emit=outbox.enqueue if outbox else None)
    sock = bind(config.host, config.port)
    print(f"agent-runtime serving on {config.host}:{config.port}; engines {providers.names}")
    print(f"  Rozper call url: {config.base_url}/rozper/voice   Twilio voice url: {config.base_url}/twilio/voice")
    server = uvicorn_server(runtime, log_level="info")

    async def main() -> None:
        await warm_up(providers)
        await warm_lines(runtime.lines, agent, providers.tts)  # greeting leaves at once; fallback works without TTS
        runtime.observer.enable_spans(os.environ)  # OTel turn spans when OTEL_EXPORTER_OTLP_ENDPOINT is set
        freeze_startup_objects()
        async with delivering(outbox, config.webhook_secrets), anyio.create_task_group() as tg:
            tg.start_soon(runtime.pump_events)
            try:
                await server.serve([sock])
            finally:
                runtime.close_events()  # the pump stores the last calls' events, then the worker stops

    _run(main)


def freeze_startup_objects() -> None:
    """Moves everything allocated at start-up out of the garbage collector's sight.

    Modules, models, schemas and caches live as long as the process; without this every full
    collection walks them all (~135k objects: a 55 ms pause measured at 150 calls, which a
    caller hears as a late reply or a late barge-in).
    """
    gc.collect()
    gc.freeze()


def _existing(path: str) -> Path:
    if not Path(path).is_file():
        raise ConfigError(f"--wav {path}: no such file")
    return Path(path)


def _agent(args: argparse.Namespace):  # noqa: ANN202 - Agent, imported lazily
    from agent_runtime.agent.loading import load_agent

    try:
        return load_agent(args.agent, Path(args.prompts) if args.prompts else None)
    except (ValueError, ImportError, SyntaxError) as exc:  # a user's agent file: say what to fix
        raise ConfigError(f"--agent {args.agent or '(default)'}: {exc}") from exc


def cmd_call(args: argparse.Namespace) -> None:
    import httpx
    from websockets.exceptions import InvalidHandshake, InvalidStatus

    from agent_runtime.audio.wav import read_wav_mono, write_wav
    from agent_runtime.sim.caller import CallScript, Utterance, place_call
    from agent_runtime.sim.transcript import fetch_transcript

    audio, _ = read_wav_mono(_existing(args.wav), 8000)
    script = CallScript(utterances=[Utterance(audio)])
    # The carrier signs with the agent's secret: export the same ROZPER_SIGNING_SECRETS as the server.
    secret = os.environ.get("ROZPER_SIGNING_SECRETS", "").split(",")[0].strip() or None

    async def main() -> None:
        result = await place_call(args.url, script, secret)
        write_wav(Path(args.record), result.stereo(), 8000)
        greeting = f"{result.greeting_latency_ms:.0f} ms" if result.greeting_latency_ms is not None else "none"
        turns = ", ".join(f"{ms:.0f} ms" for ms in result.turn_latencies_ms) or "no answer"
        print(f"greeting: first audio {greeting} after the stream opened; turn latency (caller's last speech "
              f"frame → first agent audio): {turns}")
        print(f"media messages {result.media_messages}, marks {result.marks_echoed}/{result.marks_sent} echoed, "
              f"clears {result.clears}; recording {args.record} (left caller, right agent)")
        print(await fetch_transcript(args.url, result.call_id, os.environ.get("AGENT_API_KEY")))

    try:
        _run(main)
    except httpx.HTTPStatusError as exc:  # a wrong URL or secret: say so, no traceback
        hint = " (export the server's ROZPER_SIGNING_SECRETS here too)" if exc.response.status_code == 401 else ""
        sys.exit(f"call failed: {exc.request.url} answered {exc.response.status_code}{hint}")
    except InvalidStatus as exc:
        sys.exit(f"call failed: the agent refused the media stream ({exc.response.status_code}): it is at its call "
                 "limit (AGENT_MAX_CALLS), or the stream's signature did not verify")
    except (OSError, httpx.HTTPError, InvalidHandshake) as exc:
        sys.exit(f"call failed: {type(exc).__name__}: {exc} (is the agent running, and is AGENT_PUBLIC_URL "
                 "reachable from here? Unset it for a local test)")


def cmd_demo(args: argparse.Namespace) -> None:
    from agent_runtime.demo import DEFAULT_CALLER_AUDIO, print_report, run_demo

    recording = Path(args.record)
    agent = _agent(args)

    async def main() -> None:
        record, result = await run_demo(_existing(args.wav) if args.wav else DEFAULT_CALLER_AUDIO, recording, agent)
        print_report(record, result, recording, agent.vad.hangover_ms)

    _run(main)


def cmd_bench(args: argparse.Namespace) -> None:
    from agent_runtime.bench.runner import run

    run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-runtime", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("AGENT_LOG_LEVEL", "WARNING"))
    parser.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("AGENT_LOG_FORMAT", "text"),
                        help="json: one JSON object per line, e.g. the per-turn lines of agent_runtime.turns (env AGENT_LOG_FORMAT)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer calls: call-connect endpoint + media WebSocket")
    serve.add_argument("--host", default=None, help="bind address (env AGENT_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (env AGENT_PORT, default 8080)")
    serve.add_argument("--public-url", default=None, help="https URL the carrier reaches (env AGENT_PUBLIC_URL)")
    serve.add_argument("--prompts", default=None, help="prompts folder (default ./prompts)")
    serve.add_argument("--agent", default=None, help="an agent file or module, e.g. examples/booking/agent.py:build_agent")
    serve.add_argument("--max-calls", type=int, default=None, help="concurrent call limit (env AGENT_MAX_CALLS)")
    serve.add_argument("--allow-unsigned", action="store_true", help=ALLOW_UNSIGNED_HELP)
    serve.set_defaults(func=cmd_serve)
    call = sub.add_parser("call", help="place a simulated Rozper call against a running agent")
    call.add_argument("url", help="the agent's call-connect URL, e.g. http://127.0.0.1:8080/rozper/voice")
    call.add_argument("--wav", required=True, help="the caller's audio")
    call.add_argument("--record", default="call.wav", help="stereo recording of both legs")
    call.set_defaults(func=cmd_call)
    demo = sub.add_parser("demo", help="run the server in-process and place one call on the offline engines")
    demo.add_argument("--wav", default=None, help="the caller's audio (default: examples/audio)")
    demo.add_argument("--record", default="demo_call.wav", help="stereo recording of both legs")
    demo.add_argument("--agent", default=None, help="an agent file or module, e.g. examples/booking/agent.py:build_agent")
    demo.add_argument("--prompts", default=None, help="prompts folder for the default agent (default ./prompts)")
    demo.set_defaults(func=cmd_demo)
    from agent_runtime.bench.runner import add_arguments as add_bench_arguments  # light: argparse only

    bench = sub.add_parser("bench", help="N concurrent simulated calls against a server process: latency, CPU, memory")
    add_bench_arguments(bench)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format)
    except ValueError as exc:
        sys.exit(f"configuration error: {exc}")
    try:
        args.func(args)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
