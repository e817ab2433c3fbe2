"""Logging set-up: plain text or one JSON object per line (`AGENT_LOG_FORMAT=json`), and the turn log.

The turn log (`agent_runtime.turns`) has one line per agent turn with the call id and its stage
times. It carries no transcript text: transcripts sit behind the API's `transcripts.read`
scope, and a log line must not leak around that.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

turn_log = logging.getLogger("agent_runtime.turns")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str, log_format: str) -> None:
    """Root logging for the CLI. `log_format` is "text" or "json"."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {log_format!r} (AGENT_LOG_FORMAT / --log-format)")
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def log_turn(call_id: str, generation: int, kind: str, interrupted: bool, stages_ms: Mapping[str, float]) -> None:
    if not turn_log.isEnabledFor(logging.INFO):
        return
    summary = " ".join(f"{k}={v:.0f}" for k, v in stages_ms.items() if k != "end_of_speech")
    turn_log.info(
        "turn %s g%d %s", kind, generation, summary,
        extra={"call_id": call_id, "generation": generation, "kind": kind, "interrupted": interrupted,
               "stages_ms": dict(stages_ms)},
    )
