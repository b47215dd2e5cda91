"""Configuration: explicit arguments first, then ``PROGUARD_*`` environment variables.

Nothing reads the environment at import time: ``ProGuardSettings()`` reads it when built.
"""

from __future__ import annotations

import difflib
import logging
import os
import warnings
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger("proguard_rails.settings")


class ProGuardSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROGUARD_", extra="ignore", populate_by_name=True)

    # --- where the model is
    backend: Literal["auto", "openai", "transformers", "vllm", "lite"] = Field(
        "auto", description="auto: base_url, else model_path, else the embedded lite judge"
    )
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    model: str | None = Field(None, description="model name at the endpoint; discovered from /v1/models if unset")
    api_key: SecretStr | None = None
    model_path: str | None = Field(None, description="local checkpoint folder for the transformers/vLLM backends")
    device: str | None = Field(None, description="local backends: cuda, cpu, auto")
    dtype: str | None = Field(None, description="local backends: bfloat16 on GPU, float32 on CPU by default")

    # --- generation and transport
    timeout: float = Field(60.0, gt=0, description="deadline of one check in seconds, retries included")
    connect_timeout: float = Field(5.0, gt=0)
    max_retries: int = Field(2, ge=0, description="retries on connection errors, 5xx and 429 only")
    retry_backoff: float = Field(0.25, ge=0, description="first backoff in seconds, doubled each retry")
    max_concurrency: int = Field(16, ge=1, description="concurrent requests per backend")
    max_tokens: int = Field(1024, ge=16, description="generation cap; ProGuard's reasoning is short")
    send_stop: bool = Field(True, description="send stop=['</answer>'] to the endpoint (always applied client-side)")
    max_response_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="cap on an endpoint response body, measured after decompression"
    )
    proxy_from_env: bool = Field(
        False,
        description="send endpoint requests through HTTP(S)_PROXY/ALL_PROXY from the environment; off by "
        "default, so judged content goes only to base_url",
    )
    circuit_breaker_failures: int = Field(5, ge=1, description="consecutive failures that open the breaker")
    circuit_breaker_cooldown: float = Field(10.0, ge=0, description="seconds the open breaker fails fast")

    # --- policy
    fail_mode: Literal["closed", "open"] = "closed"
    config: str | None = Field(None, description="policy file (YAML or TOML), see proguard_rails.config")

    # --- input limits
    max_chars: int = Field(24_000, ge=200, description="per text field; longer text keeps head and tail")
    max_image_pixels: int = Field(40_000_000, ge=1, description="decoded pixels per image (bomb guard)")
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1, description="encoded bytes per image")
    max_images: int = Field(4, ge=1)
    allow_image_urls: bool = Field(False, description="fetch http(s) image URLs (off by default)")
    allow_private_image_urls: bool = Field(
        False, description="with URL fetching on, also fetch loopback/private addresses"
    )
    image_url_timeout: float = Field(10.0, gt=0)

    system_messages: Literal["judge", "skip"] = Field(
        "judge",
        description="system/developer messages in a conversation: judged with it (default), or skipped "
        "and listed in Decision.not_judged",
    )

    # --- engine
    cache_size: int = Field(4096, ge=0, description="LRU cache entries; 0 disables the cache")

    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None


#: ``PROGUARD_*`` variables that other parts of the project read (not settings of the guard).
OTHER_ENV_VARS = frozenset({"PROGUARD_PUBLIC_DATA", "PROGUARD_REWARD_EMBEDDING_MODEL", "PROGUARD_TEST_CACHE"})
_warned_env: set[str] = set()


class SettingsWarning(UserWarning):
    """A configuration that probably does not do what was meant (a misspelled variable, an
    ignored setting)."""


def unknown_env_vars(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """``PROGUARD_*`` variables that are no setting, each with the closest setting's variable name."""
    env = os.environ if environ is None else environ
    known = {f"PROGUARD_{name.upper()}" for name in ProGuardSettings.model_fields}
    out: dict[str, str | None] = {}
    for key in env:
        upper = key.upper()
        if not upper.startswith("PROGUARD_") or upper in known or upper in OTHER_ENV_VARS:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        out[key] = close[0] if close else None
    return out


def warn_unknown_env_vars(environ: Mapping[str, str] | None = None) -> None:
    """Warn once per process about each ``PROGUARD_*`` variable that no setting reads (a typo is
    otherwise silently ignored, and the guard runs with the default instead)."""
    for key, close in unknown_env_vars(environ).items():
        if key in _warned_env:
            continue
        _warned_env.add(key)
        hint = f"; did you mean {close}?" if close else ""
        msg = f"environment variable {key} is not a proguard-rails setting and is ignored{hint}"
        logger.warning(msg)
        warnings.warn(msg, SettingsWarning, stacklevel=3)


__all__ = ["OTHER_ENV_VARS", "ProGuardSettings", "SettingsWarning", "unknown_env_vars", "warn_unknown_env_vars"]
