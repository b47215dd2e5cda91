"""Helpers shared by the local-backend tests."""

from __future__ import annotations

SHORT_SYSTEM = "You are a safety moderator. Classify the request and the response."


def texts(results) -> list[str]:
    """Generation texts; any exception fails the test with its message."""
    out = []
    for r in results:
        if isinstance(r, BaseException):
            raise AssertionError(f"generation failed: {r!r}")
        out.append(r.text)
    return out
