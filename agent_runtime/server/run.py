"""Runs the ASGI app with uvicorn inside the caller's event loop (for `serve`, the demo and tests)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn

from agent_runtime.runtime import Runtime
from agent_runtime.server.app import create_app

# Carrier frames are ~0.4 KB. Up to this size an oversized frame reaches the codec, which counts
# and skips it (the call goes on); beyond it the WebSocket closes with 1009, bounding memory.
MAX_FRAME_BYTES = 1024 * 1024


def bind(host: str, port: int) -> socket.socket:
    """Binds before the config is built, so port 0 can resolve to a real port for the URLs we hand out."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def uvicorn_server(runtime: Runtime, log_level: str = "warning") -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(runtime),
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=None,  # the carrier streams 50 frames/s; pings add nothing
        # permessage-deflate on 50 small base64 frames/s per call cost ~18% of the server's CPU
        # (profiled at 150 calls) and μ-law in base64 barely compresses; declining it is allowed.
        ws_per_message_deflate=False,
        lifespan="off",
        log_level=log_level,
        access_log=False,
    )
    return uvicorn.Server(config)


@asynccontextmanager
async def running_server(runtime: Runtime, sock: socket.socket, log_level: str = "warning") -> AsyncIterator[uvicorn.Server]:
    """Serves until the block exits; yields once the server accepts connections."""
    server = uvicorn_server(runtime, log_level)

    async def serve() -> None:
        try:
            await server.serve([sock])
        finally:
            runtime.close_events()  # the last calls have ended: let the pump drain and stop

    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.pump_events)  # call lifecycle events → runtime.emit (the outbox)
        tg.start_soon(serve)
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        try:
            yield server
        finally:
            server.should_exit = True
