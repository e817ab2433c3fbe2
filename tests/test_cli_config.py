"""Bad configuration stops start-up with a message that says what to change (real CLI process)."""

from __future__ import annotations

import subprocess
import sys


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_runtime.cli", *args], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_missing_agent_file_names_the_file() -> None:
    done = _cli("serve", "--allow-unsigned", "--agent", "no/such/agent.py:build")
    assert done.returncode != 0
    assert "configuration error" in done.stderr and "no/such/agent.py" in done.stderr


def test_agent_name_missing_in_file_says_how_to_name_it() -> None:
    done = _cli("serve", "--allow-unsigned", "--agent", "examples/booking/agent.py:nothing")
    assert done.returncode != 0
    assert "has no 'nothing'" in done.stderr and "path/to/agent.py:name" in done.stderr


def test_serve_without_a_carrier_secret_refuses_to_start() -> None:
    done = _cli("serve")
    assert done.returncode != 0
    assert "ROZPER_SIGNING_SECRETS" in done.stderr and "--allow-unsigned" in done.stderr


def test_bad_port_env_names_the_variable() -> None:
    done = _cli("serve", "--allow-unsigned", env={"AGENT_PORT": "eighty"})
    assert done.returncode != 0
    assert "AGENT_PORT" in done.stderr
