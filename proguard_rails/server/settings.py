"""Server settings: command-line options first, then ``PROGUARD_SERVER_*`` variables."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ConfigurationError


class ServerSettings(BaseSettings):
    """What ``proguard-rails serve`` listens on and how it limits and authenticates requests.

    The judge, the policy and the input limits of the guard itself (text length, image
    pixels and bytes, image-URL fetching) are the guard's: ``PROGUARD_*`` variables, the judge
    options and ``--config``.
    """

    model_config = SettingsConfigDict(env_prefix="PROGUARD_SERVER_", extra="ignore")

    host: str = Field("127.0.0.1", description="address to bind; non-loopback needs API keys (or allow_unauthenticated)")
    port: int = Field(8080, ge=0, le=65535)
    api_keys: SecretStr | None = Field(None, description="comma-separated bearer tokens")
    api_keys_file: str | None = Field(None, description="file with one bearer token per line (# comments)")
    allow_unauthenticated: bool = Field(
        False, description="serve without keys on a non-loopback address (behind an authenticating proxy only)"
    )
    metrics_public: bool = Field(False, description="serve /metrics without a bearer token")
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024, description="request body limit (HTTP 413 above)")
    max_inputs: int = Field(64, ge=1, description="inputs per /v1/moderations call")
    max_concurrency: int = Field(64, ge=1, description="requests judged at once")
    max_queue: int = Field(1024, ge=0, description="requests waiting for a slot; more get HTTP 429")
    deadline: float = Field(60.0, gt=0, description="per-request deadline in seconds, queueing included")
    model_name: str | None = Field(None, description="the `model` the API reports (default: derived from the judge)")
    include_raw: bool = Field(False, description="allow clients to ask for the model's raw answer (include_raw)")
    log_level: str = "info"

    def keys(self) -> frozenset[str]:
        """Every accepted bearer token (environment and file)."""
        out: set[str] = set()
        if self.api_keys is not None:
            out.update(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())
        if self.api_keys_file:
            path = Path(os.path.expanduser(self.api_keys_file))
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigurationError(f"cannot read the API keys file {str(path)!r}: {exc.strerror or exc}") from exc
            from_file = {ln.split("#", 1)[0].strip() for ln in text.splitlines()} - {""}
            out.update(from_file)
            if not from_file:
                raise ConfigurationError(f"the API keys file {str(path)!r} has no keys")
        return frozenset(out)

    def check_bind(self, keys: frozenset[str]) -> None:
        """Refuse to expose an unauthenticated guard beyond this machine unless told explicitly."""
        if keys or self.allow_unauthenticated or is_loopback(self.host):
            return
        raise ConfigurationError(
            f"refusing to listen on {self.host} without API keys: anyone who can reach it could use the "
            "guard. Set PROGUARD_SERVER_API_KEYS / --api-keys-file, bind 127.0.0.1, or pass "
            "--allow-unauthenticated if an authenticating proxy sits in front."
        )


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


__all__ = ["ServerSettings", "is_loopback"]
