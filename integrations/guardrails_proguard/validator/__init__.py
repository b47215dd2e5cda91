"""Guardrails hub-style package of the ``proguard/proguard`` validator."""

from .main import DEFAULT_REFUSAL, ProGuardValidator

__all__ = ["DEFAULT_REFUSAL", "ProGuardValidator"]
