"""Bridge a blocking, callback-style producer running in a thread to an async iterator.

Why a plain thread instead of `anyio.to_thread.run_sync` inside a task group: an async
generator must not hold a task group (cancel scope) across `yield`, because a consumer that
`break`s out leaves the generator to be closed later, possibly from another task. Here the
generator owns nothing async: the thread posts items to a memory object stream through the
event loop's token, and closing the generator only sets a flag the producer checks between
tokens/chunks, so the worker stops within one step.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


class Stopped(Exception):
    """Raised inside the producer by `emit` once the consumer has gone away."""


class _Failure(Generic[T]):
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


Producer = Callable[[Callable[[T], None], threading.Event], None]


async def iterate_in_thread(produce: Producer[T], *, name: str) -> AsyncIterator[T]:
    """Run `produce(emit, stop)` in a daemon thread and yield whatever it emits.

    `emit(item)` raises `Stopped` once the consumer has stopped iterating; callback-driven
    producers that cannot propagate exceptions should poll `stop.is_set()` instead. An
    exception raised by the producer is re-raised in the consumer.
    """
    send, recv = anyio.create_memory_object_stream[T | _Failure[T]](math.inf)
    token = anyio.lowlevel.current_token()
    stop = threading.Event()

    def post(fn: Callable[..., object], *args: object) -> None:
        try:
            anyio.from_thread.run_sync(fn, *args, token=token)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            stop.set()  # the consumer closed its end, or its event loop is gone

    def emit(item: T) -> None:
        if stop.is_set():
            raise Stopped
        post(send.send_nowait, item)
        if stop.is_set():
            raise Stopped

    def run() -> None:
        try:
            produce(emit, stop)
        except Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            if not stop.is_set():
                post(send.send_nowait, _Failure(exc))
        finally:
            post(send.close)

    # Daemon: a C call stuck at interpreter exit must not hang shutdown.
    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        async with recv:
            async for item in recv:
                if isinstance(item, _Failure):
                    raise item.error
                yield item
    finally:
        stop.set()
