"""Shared fixtures. (tests/ is on sys.path via rootdir conftest insertion, so helpers
import as `fakes.…`.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.openai_server import FakeOpenAIServer


@pytest.fixture(scope="session")
def _openai_server_session() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(_openai_server_session: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    """The local OpenAI-compatible server, with empty scripts and request log per test."""
    _openai_server_session.reset()
    yield _openai_server_session
    _openai_server_session.reset()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def openai_client(openai_server: FakeOpenAIServer):  # -> AsyncIterator[openai.AsyncOpenAI]
    """A real `openai.AsyncOpenAI` against the local server, closed in the test's own loop."""
    client = openai_server.client()
    yield client
    await client.close()
