"""Test helpers for whole calls: a runtime on a loopback port with real engines."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np

from agent_runtime.agent.definition import Agent
from agent_runtime.audio.wav import read_wav_mono
from agent_runtime.config import ServerConfig
from agent_runtime.providers.base import Providers
from agent_runtime.handoff.store import QueueStore
from agent_runtime.runtime import CallRecord, EmitEvent, Runtime
from agent_runtime.server.run import bind, running_server

DATA = Path(__file__).parent / "data"
SECRET = "rzp_whsec_test_0123456789abcdef"


def caller_audio(name: str = "librivox_ss_0880.wav") -> np.ndarray:
    audio, _ = read_wav_mono(DATA / name, 8000)
    return audio


def speech_seconds(audio: np.ndarray, start_s: float, length_s: float) -> np.ndarray:
    """A stretch of a recording, as the caller's words."""
    return audio[int(start_s * 8000) : int((start_s + length_s) * 8000)]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 8000), np.int16)


@dataclass
class LiveAgent:
    runtime: Runtime
    config: ServerConfig

    @property
    def connect_url(self) -> str:
        return f"{self.config.base_url}/rozper/voice"

    async def ended_call(self, timeout_s: float = 1.0) -> CallRecord:
        """The next call record to end, waiting at most `timeout_s` (S14: teardown within 1 s)."""
        with anyio.fail_after(timeout_s):
            while not self.runtime.finished_calls:
                await anyio.sleep(0.01)
        return self.runtime.finished_calls[-1]


@asynccontextmanager
async def live_agent(
    providers: Providers, agent: Agent | None = None, queue_store: QueueStore | None = None, emit: EmitEvent | None = None,
    **config: object,
) -> AsyncIterator[LiveAgent]:
    sock = bind("127.0.0.1", 0)
    config.setdefault("data_dir", tempfile.mkdtemp(prefix="agent_runtime_test_"))
    cfg = ServerConfig(host="127.0.0.1", port=sock.getsockname()[1], signing_secrets=(SECRET,), **config)  # type: ignore[arg-type]
    runtime = Runtime(cfg, agent or Agent.from_prompts(), providers, queue_store=queue_store, emit=emit)
    async with running_server(runtime, sock):
        yield LiveAgent(runtime, cfg)
