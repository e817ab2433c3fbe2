"""The Rozper REST client against a local fake Rozper API over real HTTP: idempotency keys,
retries (429 Retry-After, 5xx, timeouts), typed errors, and a key that never leaks."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator

import anyio
import httpx
import pytest

from agent_runtime.carrier.rozper_api import (
    Call,
    ConnectionFailed,
    Conflict,
    InvalidParam,
    RateLimited,
    RozperClient,
    RozperError,
    ServerError,
    Unauthorized,
)
from agent_runtime.config import ConfigError
from fakes.rozper_api import (
    FakeRozperAPI,
    conflict,
    invalid_param,
    rate_limited,
    server_error,
    slow_then_execute,
    unauthorized,
)

pytestmark = pytest.mark.anyio
KEY = "sk_test_secret_5c1e9a7f3b2d4e6a"
TO, FROM, URL = "+15559870002", "+15551230001", "https://agent.example.com/rozper/voice"


@pytest.fixture(scope="module")
def _fake_session() -> Iterator[FakeRozperAPI]:
    with FakeRozperAPI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
def fake(_fake_session: FakeRozperAPI) -> Iterator[FakeRozperAPI]:
    _fake_session.reset()
    yield _fake_session
    _fake_session.reset()


def client(fake: FakeRozperAPI, **options: object) -> RozperClient:
    options.setdefault("backoff_s", 0.01)  # keep retries fast; the policy is what is under test
    return RozperClient(fake.base_url, KEY, **options)  # type: ignore[arg-type]


async def test_create_sends_bearer_and_a_fresh_key_and_returns_a_typed_call(fake: FakeRozperAPI) -> None:
    async with client(fake) as rozper:
        call = await rozper.calls.create(TO, FROM, URL, record=True, timeout=30)
    [request] = fake.requests
    assert isinstance(call, Call) and call.id.startswith("call_") and call.status == "queued"
    assert (call.to, call.from_, call.created_at.tzinfo is not None) == (TO, FROM, True)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"to": TO, "from": FROM, "url": URL, "record": True, "timeout": 30}
    assert uuid.UUID(request.idempotency_key or "").version == 4


async def test_each_logical_create_gets_a_new_key(fake: FakeRozperAPI) -> None:
    async with client(fake) as rozper:
        first = await rozper.calls.create(TO, FROM, URL)
        second = await rozper.calls.create(TO, FROM, URL)
    keys = [r.idempotency_key for r in fake.requests]
    assert len(set(keys)) == 2 and first.id != second.id and len(fake.calls) == 2


async def test_a_caller_supplied_key_replays_the_same_call(fake: FakeRozperAPI) -> None:
    async with client(fake) as rozper:
        first = await rozper.calls.create(TO, FROM, URL, idempotency_key="order-17-attempt-1")
        again = await rozper.calls.create(TO, FROM, URL, idempotency_key="order-17-attempt-1")
        with pytest.raises(Conflict) as changed:  # same key, different payload: Rozper says 409
            await rozper.calls.create(TO, FROM, URL, record=True, idempotency_key="order-17-attempt-1")
    assert first.id == again.id and len(fake.calls) == 1
    assert changed.value.status == 409 and changed.value.idempotency_key == "order-17-attempt-1"


async def test_500_then_201_retries_with_the_same_key(fake: FakeRozperAPI) -> None:
    fake.push(server_error())
    async with client(fake) as rozper:
        call = await rozper.calls.create(TO, FROM, URL)
    keys = [r.idempotency_key for r in fake.requests]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0] is not None
    assert list(fake.calls) == [call.id]


async def test_a_lost_answer_is_retried_with_the_same_key_and_places_one_call(fake: FakeRozperAPI) -> None:
    fake.push(slow_then_execute(1.0))  # Rozper places the call but the answer misses our timeout
    async with client(fake, timeout_s=0.3) as rozper:
        call = await rozper.calls.create(TO, FROM, URL)
    await anyio.sleep(1.0)  # let the slow first request finish on the server
    keys = {r.idempotency_key for r in fake.requests}
    assert len(fake.requests) == 2 and len(keys) == 1
    assert list(fake.calls) == [call.id]  # one phone call, not two


async def test_429_waits_for_retry_after(fake: FakeRozperAPI) -> None:
    fake.push(rate_limited(retry_after=1))
    async with client(fake) as rozper:
        await rozper.calls.create(TO, FROM, URL)
    first, second = fake.requests
    assert 0.9 <= second.at - first.at < 3.0  # loosely: the wait was Retry-After, not the backoff
    assert first.idempotency_key == second.idempotency_key


async def test_429_with_a_retry_after_beyond_the_bound_is_raised_not_waited(fake: FakeRozperAPI) -> None:
    fake.push(rate_limited(retry_after=120))
    started = time.monotonic()
    async with client(fake, max_retry_after_s=5) as rozper:
        with pytest.raises(RateLimited) as caught:
            await rozper.calls.create(TO, FROM, URL)
    assert time.monotonic() - started < 2 and len(fake.requests) == 1
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, "rate_limited", 120)


async def test_retries_are_bounded_and_end_in_a_typed_server_error(fake: FakeRozperAPI) -> None:
    fake.push(*[server_error() for _ in range(5)])
    async with client(fake, max_retries=2) as rozper:
        with pytest.raises(ServerError) as caught:
            await rozper.calls.create(TO, FROM, URL)
    error = caught.value
    assert len(fake.requests) == 3 and len({r.idempotency_key for r in fake.requests}) == 1
    assert (error.status, error.code) == (500, "server_error") and error.request_id.startswith("req_")
    assert error.idempotency_key == fake.requests[0].idempotency_key  # to resume this attempt later


@pytest.mark.parametrize(("answer", "kind", "status", "code"), [
    (conflict(), Conflict, 409, "conflict"),
    (invalid_param("to", "format"), InvalidParam, 422, "invalid_param"),
    (unauthorized(), Unauthorized, 401, "unauthorized"),
])
async def test_4xx_is_never_retried(fake: FakeRozperAPI, answer, kind: type[RozperError], status: int, code: str) -> None:  # noqa: ANN001
    fake.push(answer)
    async with client(fake) as rozper:
        with pytest.raises(kind) as caught:
            await rozper.calls.create(TO, FROM, URL)
    assert len(fake.requests) == 1
    error = caught.value
    assert (error.status, error.code) == (status, code) and error.request_id.startswith("req_") and error.message
    if kind is InvalidParam:
        assert error.param_errors == [{"param": "to", "reason": "format"}]


async def test_a_wrong_key_is_refused_by_the_server(fake: FakeRozperAPI) -> None:
    async with RozperClient(fake.base_url, "sk_test_wrong_key_000000000") as rozper:
        with pytest.raises(Unauthorized) as caught:
            await rozper.account()
    assert caught.value.status == 401 and len(fake.requests) == 1


async def test_a_post_without_an_idempotency_key_is_not_retried_on_5xx(fake: FakeRozperAPI) -> None:
    fake.push(server_error())
    async with client(fake) as rozper:
        with pytest.raises(ServerError):
            await rozper.request("POST", "/v2/calls", json={"to": TO, "from": FROM, "url": URL})
    assert len(fake.requests) == 1 and fake.calls == {}


async def test_get_account_is_typed_and_retried_on_5xx(fake: FakeRozperAPI) -> None:
    fake.push(server_error())
    async with client(fake) as rozper:
        account = await rozper.account()
    assert account.id == fake.account_id and "calls.write" in account.scopes
    assert account.rate_limit is not None and account.rate_limit.limit == 1000
    assert len(fake.requests) == 2 and all(r.idempotency_key is None for r in fake.requests)


class _Counting(httpx.AsyncBaseTransport):
    """The real transport, counting attempts (a dead port gives no server to count them)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.attempts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts.append(request.method)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_connection_errors_are_retried_only_for_idempotent_requests() -> None:
    transport = _Counting()
    async with RozperClient(f"http://127.0.0.1:{_dead_port()}", KEY, backoff_s=0.01, max_retries=2, transport=transport) as rozper:
        with pytest.raises(ConnectionFailed) as create_failed:
            await rozper.calls.create(TO, FROM, URL)
        with pytest.raises(ConnectionFailed):
            await rozper.account()
        with pytest.raises(ConnectionFailed):
            await rozper.request("POST", "/v2/calls", json={})
    assert transport.attempts == ["POST"] * 3 + ["GET"] * 3 + ["POST"]
    assert create_failed.value.status is None and create_failed.value.idempotency_key


@pytest.mark.parametrize(("to", "from_"), [("5559870002", FROM), (TO, "+0155512"), (TO, "+1 555 123 0001")])
async def test_numbers_are_checked_as_e164_before_sending(fake: FakeRozperAPI, to: str, from_: str) -> None:
    async with client(fake) as rozper:
        with pytest.raises(ValueError, match="E.164"):
            await rozper.calls.create(to, from_, URL)
    assert fake.requests == []


def test_from_env_needs_the_key_and_defaults_the_base() -> None:
    with pytest.raises(ConfigError, match="ROZPER_API_KEY"):
        RozperClient.from_env({})
    assert RozperClient.from_env({"ROZPER_API_KEY": KEY}).base_url == "https://api.rozper.com"
    assert RozperClient.from_env({"ROZPER_API_KEY": KEY, "ROZPER_API_BASE": "http://127.0.0.1:9/"}).base_url == "http://127.0.0.1:9"


async def test_the_key_never_reaches_logs_reprs_or_errors(fake: FakeRozperAPI, caplog: pytest.LogCaptureFixture) -> None:
    fake.push(server_error(), rate_limited(retry_after=0))
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log requests at DEBUG
    async with client(fake) as rozper:
        await rozper.calls.create(TO, FROM, URL)
        fake.push(invalid_param())
        with pytest.raises(InvalidParam) as caught:
            await rozper.calls.create(TO, FROM, URL)
        reprs = [repr(rozper), str(rozper), repr(vars(rozper)), repr(rozper.calls)]
    assert any("retry" in r.message for r in caplog.records)  # the retries were logged…
    assert KEY not in caplog.text  # … without the key
    assert all(KEY not in text for text in reprs)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
