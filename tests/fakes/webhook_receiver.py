"""A real webhook endpoint for tests: uvicorn on 127.0.0.1 in a thread, answering by a script.

    with WebhookReceiver(script=[500, 500, HANG]) as receiver:   # then 200 for everything
        url = receiver.url

Every request is recorded (arrival time, headers, raw body). `HANG` holds the request open
(past the sender's timeout) until `hang_s` passes or the receiver stops. `fail_all()` makes
every request a 500 until `accept_all()`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HANG = "hang"


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    answer: int | str


class WebhookReceiver:
    def __init__(self, script: Iterable[int | str] = (), hang_s: float = 30.0) -> None:
        self._lock = threading.Lock()
        self._script: deque[int | str] = deque(script)
        self._failing = False
        self.hang_s = hang_s
        self.attempts: list[Attempt] = []
        self._closing = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.app = Starlette(routes=[Route("/hooks", self._hook, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @property
    def accepted(self) -> list[Attempt]:
        with self._lock:
            return [a for a in self.attempts if a.answer == 200]

    def fail_all(self) -> None:
        self._failing = True

    def accept_all(self) -> None:
        self._failing = False

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            answer: int | str = 500 if self._failing else (self._script.popleft() if self._script else 200)
            self.attempts.append(Attempt(time.monotonic(), dict(request.headers), body, answer))
        if answer == HANG:
            deadline = time.monotonic() + self.hang_s
            while time.monotonic() < deadline and not self._closing.is_set():
                await anyio.sleep(0.05)
            return Response(status_code=200)  # too late: the sender gave up long ago
        return Response(b"{}", status_code=int(answer), media_type="application/json")

    def __enter__(self) -> WebhookReceiver:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, loop="asyncio")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("webhook receiver failed to start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
