"""Server configuration: from flags and environment, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """Bad configuration; the message says what to change."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # The URL the carrier reaches us at (behind a proxy or tunnel it differs from host:port).
    public_url: str = ""
    # Rozper-Signature secrets; several during a rotation (new first).
    signing_secrets: tuple[str, ...] = ()
    twilio_auth_token: str | None = field(default=None, repr=False)
    # Development only: accept call-connect requests and streams without a carrier signature.
    allow_unsigned: bool = False
    max_calls: int = 200
    signature_tolerance_s: int = 300
    session_token_ttl_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, got {self.port}")
        if self.max_calls < 1:
            raise ConfigError(f"max_calls must be at least 1, got {self.max_calls}")
        if not 60 <= self.signature_tolerance_s <= 600:
            raise ConfigError(f"signature tolerance must be 60..600 s, got {self.signature_tolerance_s}")
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise ConfigError(
                    f"public URL {self.public_url!r} must look like https://host[:port] (no query); "
                    "set AGENT_PUBLIC_URL or --public-url"
                )
        if not (self.signing_secrets or self.twilio_auth_token or self.allow_unsigned):
            raise ConfigError(
                "no carrier secret configured: set ROZPER_SIGNING_SECRETS (comma-separated, newest first) "
                "for Rozper or TWILIO_AUTH_TOKEN for Twilio; for local development only pass --allow-unsigned"
            )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def media_url(self) -> str:
        """The media-stream URL given to the carrier (ws for http, wss for https)."""
        base = self.base_url
        scheme, rest = base.split("://", 1)
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/media"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> "ServerConfig":
        secrets = tuple(s.strip() for s in environ.get("ROZPER_SIGNING_SECRETS", "").split(",") if s.strip())
        values: dict[str, object] = {
            "host": environ.get("AGENT_HOST", "127.0.0.1"),
            "port": _int(environ, "AGENT_PORT", 8080),
            "public_url": environ.get("AGENT_PUBLIC_URL", ""),
            "signing_secrets": secrets,
            "twilio_auth_token": environ.get("TWILIO_AUTH_TOKEN") or None,
            "max_calls": _int(environ, "AGENT_MAX_CALLS", 200),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
