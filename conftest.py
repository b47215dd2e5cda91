"""Suite-wide settings (tests/ and integrations/): offline, no telemetry, no PROGUARD_* from the shell.

Guardrails AI's own metrics are switched off where Guardrails is used (its test conftests
point HOME at a folder whose .guardrailsrc disables metrics and remote inference).
"""

from __future__ import annotations

import os

import pytest

# Set before any test module imports transformers / guardrails.
for _var, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # litellm (pulled in by guardrails) fetches prices otherwise
    "OTEL_SDK_DISABLED": "true",
}.items():
    os.environ.setdefault(_var, _value)


@pytest.fixture(autouse=True)
def _no_proguard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's PROGUARD_BASE_URL must not redirect the tests."""
    for name in list(os.environ):
        if name.startswith("PROGUARD_") and name != "PROGUARD_TEST_CACHE":
            monkeypatch.delenv(name, raising=False)
