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
    # Rozper-Signature secrets; several during a rotation (new first). Secrets never show in repr.
    signing_secrets: tuple[str, ...] = field(default=(), repr=False)
    twilio_auth_token: str | None = field(default=None, repr=False)
    # ALLOW_UNSIGNED_HELP: development only, and only without any carrier secret.
    allow_unsigned: bool = False
    max_calls: int = 200
    signature_tolerance_s: int = 300
    session_token_ttl_s: float = 60.0
    # Bearer keys for the runtime's own API, each with its scopes (never logged).
    api_keys: tuple[tuple[str, frozenset[str]], ...] = field(default=(), repr=False)
    # Where the embedded stores live (queues, outbox, idempotency keys).
    data_dir: str = "data"
    # Outbound webhooks: every event goes to each URL, signed with every secret (rotation).
    webhook_urls: tuple[str, ...] = ()
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)

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
        for key, scopes in self.api_keys:
            if len(key) < 16:
                raise ConfigError("each AGENT_API_KEYS key must be at least 16 characters")
            unknown = scopes - API_SCOPES
            if unknown:
                raise ConfigError(f"AGENT_API_KEYS: unknown scope(s) {sorted(unknown)}; known: {sorted(API_SCOPES)}")
        for url in self.webhook_urls:
            if urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"AGENT_WEBHOOK_URLS: {url!r} is not an http(s) URL")
        if self.webhook_urls and not self.webhook_secrets:
            raise ConfigError("AGENT_WEBHOOK_URLS is set but AGENT_WEBHOOK_SECRETS is empty: events must be signed")
        if not (self.signing_secrets or self.twilio_auth_token or self.allow_unsigned):
            raise ConfigError(
                "no carrier secret configured: set ROZPER_SIGNING_SECRETS (comma-separated, newest first) "
                "for Rozper or TWILIO_AUTH_TOKEN for Twilio; for local development only pass --allow-unsigned"
            )

    @property
    def unsigned_allowed(self) -> bool:
        """Whether a carrier request or stream may arrive unsigned (see ALLOW_UNSIGNED_HELP)."""
        return self.allow_unsigned and not self.signing_secrets and not self.twilio_auth_token

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
            "api_keys": parse_api_keys(environ.get("AGENT_API_KEYS", "")),
            "data_dir": environ.get("AGENT_DATA_DIR", "data"),
            "webhook_urls": _list(environ.get("AGENT_WEBHOOK_URLS", "")),
            "webhook_secrets": _list(environ.get("AGENT_WEBHOOK_SECRETS", "")),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


# The meaning of --allow-unsigned, for the CLI's help text and the docs.
ALLOW_UNSIGNED_HELP = (
    "development only: accept call-connect requests and media streams without a carrier signature. "
    "It has effect only when no carrier secret is configured: with ROZPER_SIGNING_SECRETS or "
    "TWILIO_AUTH_TOKEN set, every inbound request and stream is verified, whatever this flag says"
)

API_SCOPES = frozenset({"queues.read", "queues.write", "transcripts.read", "calls.read"})


def _list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_api_keys(raw: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """`key1:scope,scope;key2:scope` → ((key, scopes), …)."""
    keys = []
    for entry in raw.split(";"):
        if not entry.strip():
            continue
        key, sep, scopes = entry.strip().partition(":")
        if not sep or not scopes.strip():
            raise ConfigError("AGENT_API_KEYS entries look like key:scope1,scope2 (separated by ;)")
        keys.append((key.strip(), frozenset(_list(scopes))))
    return tuple(keys)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
