"""The server under test: `agent-runtime serve` in its own process, read through /proc.

A separate process so the load client's CPU never counts as the server's, and so a core can
be given to each (`taskset`). CPU and memory come from /proc (Linux), with no extra package.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
STANDIN_ENV = {"AGENT_LLM": "standin", "AGENT_STT": "standin", "AGENT_TTS": "standin"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `agent-runtime serve` on loopback with stand-in engines and a fresh signing secret."""

    def __init__(self, max_calls: int, core: int | None = None, log_path: Path | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.secret = "rzp_whsec_bench_" + secrets.token_hex(16)
        self.max_calls = max_calls
        self.core = core
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._data_dir = tempfile.TemporaryDirectory(prefix="agent_runtime_bench_")
        self._log = None

    @property
    def connect_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/rozper/voice"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "agent_runtime.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--max-calls", str(self.max_calls)]
        return (["taskset", "-c", str(self.core)] + cmd) if self.core is not None else cmd

    def start(self, timeout_s: float = 30.0) -> None:
        env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}  # never a real provider
        env.update(STANDIN_ENV)
        env.update({"ROZPER_SIGNING_SECRETS": self.secret, "AGENT_DATA_DIR": self._data_dir.name,
                    "AGENT_WEBHOOK_URLS": "", "AGENT_LOG_LEVEL": "WARNING"})
        env.update(self.extra_env)
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /healthz within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()  # type: ignore[union-attr]
        self._data_dir.cleanup()

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()

    # ---- measurements (Linux /proc) ----
    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime

    def runqueue_wait_s(self) -> float:
        """Time the server's threads were runnable but waiting for a CPU (others had it).

        Non-zero means the machine's other processes delayed the server: latency it did not cause.
        """
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # a thread that just ended, or no schedstat on this kernel
        return total / 1e9

    def rss_mb(self) -> float:
        return _status_kb(self.pid, "VmRSS") / 1024.0

    def peak_rss_mb(self) -> float:
        """The kernel's high-water mark of resident memory for the process."""
        return _status_kb(self.pid, "VmHWM") / 1024.0


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0
