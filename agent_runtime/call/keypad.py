"""The caller's keypad (DTMF): every key to the agent's `on_dtmf` as it arrives, and each entry
("1234#") to the model as one input, so typing a number is one turn, not one per key."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

import anyio
import anyio.to_thread

from agent_runtime.agent.definition import CallContext

log = logging.getLogger("agent_runtime.call")

DtmfHandler = Callable[[str, CallContext], object]


class Keypad:
    """One call's keys, in order. `run` is a task of the call; `press` is called from the frame loop."""

    def __init__(self, handler: DtmfHandler | None, context: CallContext, gap_ms: int,
                 on_entry: Callable[[str], None]) -> None:
        self._handler = handler
        self._context = context
        self._gap_s = gap_ms / 1000.0  # an entry ends at `#` or after this long without a key
        self._on_entry = on_entry
        self._send, self._keys = anyio.create_memory_object_stream[str](64)
        self.dropped = 0

    def press(self, digit: str) -> None:
        try:
            self._send.send_nowait(digit)
        except anyio.WouldBlock:
            self.dropped += 1
            if self.dropped == 1:  # once: a flood of keys must not become a flood of log lines
                log.warning("keypad keys arrive faster than they are handled; dropping (counted in Keypad.dropped)",
                            extra={"call_id": self._context.call_id})

    async def run(self) -> None:
        entry: list[str] = []
        async with self._keys:
            while True:
                try:
                    with anyio.fail_after(self._gap_s if entry else None):
                        digit = await self._keys.receive()
                except TimeoutError:
                    digit = ""  # the caller stopped typing
                except anyio.EndOfStream:
                    return
                if digit and self._handler is not None:
                    await self._call_handler(digit)
                entry.append(digit)
                if not digit or digit == "#" or self._gap_s == 0:
                    keys = "".join(entry)
                    entry.clear()
                    if keys:
                        self._on_entry(keys)

    async def _call_handler(self, digit: str) -> None:
        """Runs `on_dtmf`; a sync one in a worker thread so it cannot stall the frame loop."""
        handler = self._handler
        assert handler is not None
        try:
            if inspect.iscoroutinefunction(handler):
                await handler(digit, self._context)
            else:
                result = await anyio.to_thread.run_sync(handler, digit, self._context, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("on_dtmf handler failed", extra={"call_id": self._context.call_id})
