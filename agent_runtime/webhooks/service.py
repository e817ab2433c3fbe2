"""Building the webhook parts from a ServerConfig, and running the delivery worker alongside.

    outbox = build_outbox(config)            # None when no AGENT_WEBHOOK_URLS
    runtime = Runtime(..., emit=outbox.enqueue if outbox else None)
    async with delivering(outbox, config.webhook_secrets):
        ...serve...
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from agent_runtime.config import ServerConfig
from agent_runtime.webhooks.delivery import DeliveryWorker
from agent_runtime.webhooks.inbound import InboundWebhooks
from agent_runtime.webhooks.outbox import Outbox
from agent_runtime.webhooks.records import CallRecordUpdates
from agent_runtime.webhooks.seen import SeenEvents

if TYPE_CHECKING:
    from agent_runtime.runtime import Runtime

OUTBOX_FILE = "outbox.sqlite3"
SEEN_FILE = "webhook_events.sqlite3"


def build_outbox(config: ServerConfig) -> Outbox | None:
    if not config.webhook_urls:
        return None
    return Outbox(Path(config.data_dir) / OUTBOX_FILE, config.webhook_urls)


def build_inbound(runtime: Runtime) -> InboundWebhooks:
    config = runtime.config
    seen = SeenEvents(Path(config.data_dir) / SEEN_FILE)
    return InboundWebhooks(config.signing_secrets, seen, CallRecordUpdates(runtime), config.signature_tolerance_s)


@asynccontextmanager
async def delivering(outbox: Outbox | None, secrets: Sequence[str], **worker_options: Any) -> AsyncIterator[DeliveryWorker | None]:
    """Runs the delivery worker for the block; leaving it cancels the worker (rows stay pending)."""
    if outbox is None:
        yield None
        return
    worker = DeliveryWorker(outbox, secrets, **worker_options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            tg.cancel_scope.cancel()


async def settle(outbox: Outbox | None, timeout_s: float) -> int:
    """Waits (at most `timeout_s`) until no delivery is pending; returns how many still are."""
    if outbox is None:
        return 0
    with anyio.move_on_after(timeout_s):
        while any(row.status == "pending" for row in await outbox.rows()):
            await anyio.sleep(0.05)
    return sum(row.status == "pending" for row in await outbox.rows())
