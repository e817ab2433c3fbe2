"""The delivery worker: POSTs due outbox rows, signed at send time, and schedules retries.

Run `DeliveryWorker.run()` as a task in the server's (or CLI's) task group; cancelling it
stops cleanly: an attempt cut short stays pending and is retried after its lease. 2xx is
delivered; any other status, a redirect, a connection error or a timeout is a retry, until
the backoff's retry count or time window is used up; then the row is marked dead (kept).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

import anyio
import httpx
from anyio.abc import TaskGroup

from agent_runtime.carrier.signatures import sign
from agent_runtime.webhooks.backoff import Backoff
from agent_runtime.webhooks.outbox import Delivery, Outbox

log = logging.getLogger("agent_runtime.webhooks")
USER_AGENT = "agent-runtime-webhooks/1"


def _where(url: str) -> str:
    # Never log a query string: endpoints sometimes carry tokens there.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class DeliveryWorker:
    def __init__(
        self,
        outbox: Outbox,
        secrets: Sequence[str],
        backoff: Backoff | None = None,
        timeout_s: float = 15.0,
        max_in_flight: int = 16,
        poll_interval_s: float = 2.0,
        lease_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if isinstance(secrets, str) or not secrets:
            raise ValueError("webhook secrets: a non-empty sequence of strings (newest first)")
        self.outbox = outbox
        self._secrets = tuple(secrets)
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        # A claimed row is not retried by anyone before the request could have timed out.
        self.lease_s = timeout_s + 5.0 if lease_s is None else lease_s
        self.max_in_flight = max_in_flight
        self.poll_interval_s = poll_interval_s  # also picks up rows other processes enqueued
        self._transport = transport
        self._in_flight = 0
        self._wake: anyio.Event | None = None

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Delivers until cancelled."""
        self._wake = anyio.Event()
        self.outbox.subscribe(self._notify)
        timeout = httpx.Timeout(self.timeout_s)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=self._transport,
                                     headers={"User-Agent": USER_AGENT}) as client:
            async with anyio.create_task_group() as tg:
                while True:
                    # A fresh event before reading the table: a commit after this point wakes us.
                    self._wake = anyio.Event()
                    try:
                        wait: float | None = await self._dispatch(client, tg)
                    except sqlite3.Error:
                        # A locked or full disk must not take the server down; the rows wait.
                        log.exception("outbox unavailable; retrying in %.1f s", self.poll_interval_s)
                        wait = self.poll_interval_s
                    with anyio.move_on_after(wait):
                        await self._wake.wait()

    async def _dispatch(self, client: httpx.AsyncClient, tg: TaskGroup) -> float | None:
        """Starts the due deliveries; returns how long to sleep unless woken (None: until woken)."""
        free = self.max_in_flight - self._in_flight
        batch = await self.outbox.claim_due(free, self.lease_s) if free > 0 else []
        for delivery in batch:
            self._in_flight += 1
            tg.start_soon(self._deliver, client, delivery)
        if free <= 0 or len(batch) == free:
            return None  # full: a finished delivery wakes us
        next_due = await self.outbox.next_due()
        return self.poll_interval_s if next_due is None else max(0.0, min(self.poll_interval_s, next_due - time.time()))

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            status, error = await self._attempt(client, delivery)
            if status is not None and 200 <= status < 300:
                await self.outbox.delivered(delivery, status)
                log.info("webhook delivered", extra={"event_id": delivery.event_id, "attempt": delivery.attempt})
            else:
                await self._failed(delivery, status, error)
        except sqlite3.Error:
            # The outcome is not recorded; the lease runs out and the row is sent again (at least once).
            log.exception("outbox update failed", extra={"event_id": delivery.event_id})
        finally:
            self._in_flight -= 1
            self._notify()

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> tuple[int | None, str]:
        # Signed now, not at enqueue: the timestamp must be fresh for the receiver's window.
        headers = {
            "Content-Type": "application/json",
            "Rozper-Event-Id": delivery.event_id,
            "Rozper-Signature": sign(delivery.body, self._secrets, int(time.time())),
        }
        # httpx timeouts are per read; a peer trickling bytes is cut off by this overall deadline.
        with anyio.move_on_after(self.timeout_s + 1.0):
            try:
                response = await client.post(delivery.url, content=delivery.body, headers=headers)
                return response.status_code, f"HTTP {response.status_code}"
            except httpx.TimeoutException:
                return None, "timeout"
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                return None, type(exc).__name__  # the class only: messages can echo the URL
        return None, "timeout"

    async def _failed(self, delivery: Delivery, status: int | None, error: str) -> None:
        retry = delivery.attempt  # attempt 1 failed → retry 1 is next
        now = time.time()
        when = now + self.backoff.delay(retry)
        too_late = when - delivery.created_at > self.backoff.window_s
        if retry > self.backoff.max_retries or too_late:
            await self.outbox.dead(delivery, status, error)
            log.error("webhook dead after %d attempts (%s): %s %s", delivery.attempt, error, delivery.event_type,
                      _where(delivery.url), extra={"event_id": delivery.event_id})
            return
        await self.outbox.retry_at(delivery, when, status, error)
        log.warning("webhook attempt %d failed (%s); retry in %.1f s", delivery.attempt, error, when - now,
                    extra={"event_id": delivery.event_id})
