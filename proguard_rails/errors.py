"""Error types.

"Unsafe" is a verdict; everything here is "the guard could not judge". The policy's fail
mode (closed by default) decides what an error does; the Decision records that it was one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .verdict import Decision


class ProGuardError(Exception):
    """Base class of every error raised by proguard-rails."""

    #: short machine-readable kind, surfaced in Decision.error_type and the CLI's JSON
    kind: str = "error"


class ConfigurationError(ProGuardError, ValueError):
    """A setting is missing or inconsistent; the message names the setting to change."""

    kind = "configuration"


class MissingDependencyError(ProGuardError, ImportError):
    """An optional extra is not installed; the message names the extra."""

    kind = "missing_dependency"

    def __init__(self, package: str, extra: str, feature: str = "") -> None:
        what = f" for {feature}" if feature else ""
        super().__init__(
            f"{package} is required{what}. Install it with: pip install 'proguard-rails[{extra}]'"
        )
        self.package = package
        self.extra = extra


class InputError(ProGuardError, ValueError):
    """The content given to the guard cannot be turned into a guard request."""

    kind = "input"


class ImageError(InputError):
    """An image is corrupt, too large, of an unsupported kind, or not allowed (URL policy)."""

    kind = "image"


class InputTooLargeError(InputError):
    """Text or image exceeds a hard limit and truncation is disabled or impossible."""

    kind = "input_too_large"


class UnjudgeableInputError(InputError):
    """The judge cannot judge this kind of content (e.g. images given to the text-only lite judge)."""

    kind = "unjudgeable"


class AnswerParseError(ProGuardError, ValueError):
    """The model's answer could not be read. ``raw`` keeps the text exactly as received."""

    kind = "parse"

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


class BackendError(ProGuardError):
    """Generation failed: the endpoint or local model did not produce an answer."""

    kind = "backend"

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class BackendTimeoutError(BackendError, TimeoutError):
    """The per-check deadline passed before an answer arrived."""

    kind = "timeout"


class BackendUnavailableError(BackendError, ConnectionError):
    """The endpoint cannot be reached (connection refused, closed, or circuit breaker open)."""

    kind = "unavailable"


class RequestRejectedError(BackendError, InputError):
    """The endpoint refused the request itself (HTTP 400, 413 or 422: too long, malformed content...).

    The input decides this, and the input may be the attacker's, so it is an input error: it
    blocks under both fail modes (``Policy.input_errors``), like a corrupt image does.
    """

    kind = "input_rejected"


class ResponseTooLargeError(BackendError):
    """The endpoint's response body exceeded ``max_response_bytes`` (after decompression)."""

    kind = "response_too_large"


class InputTimeoutError(InputError, TimeoutError):
    """The check's deadline passed while its input was being prepared (normalization, image
    decoding, URL fetching, prompt rendering). The work was abandoned; the input decides how
    long it takes, so this blocks under both fail modes, like other input errors."""

    kind = "input_timeout"


class ProGuardViolation(ProGuardError):
    """Raised by adapters configured to raise on a block. Carries the Decision."""

    kind = "violation"

    def __init__(self, decision: Decision, message: str | None = None) -> None:
        self.decision = decision
        super().__init__(message or f"ProGuard blocked this content: {decision.reason}")


__all__ = [
    "AnswerParseError",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ImageError",
    "InputError",
    "InputTimeoutError",
    "InputTooLargeError",
    "MissingDependencyError",
    "ProGuardError",
    "ProGuardViolation",
    "RequestRejectedError",
    "ResponseTooLargeError",
    "UnjudgeableInputError",
]
