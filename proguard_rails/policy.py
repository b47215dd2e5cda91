"""Policy: what a verdict or an error means for the application (allow or block)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ProGuardError
from .taxonomy import normalize_id
from .verdict import Decision, Verdict

logger = logging.getLogger("proguard_rails.policy")

CheckName = Literal["input", "output", "conversation", "tool_call", "tool_result"]


def _id_matches(category_id: str, patterns: Iterable[str]) -> bool:
    """``C8`` matches ``C8`` and every ``C8S*``; ``C8S1`` matches only itself (and a bare ``C8`` answer
    does not match ``C8S1``, since the model did not say which subcategory)."""
    for p in patterns:
        if category_id == p or (("S" not in p) and category_id.startswith(p + "S")):
            return True
    return False


class Policy(BaseModel):
    """Which unsafe verdicts block, and what errors do.

    Defaults: every unsafe verdict blocks, out-of-policy risks block, errors block
    (fail closed). ``block_categories`` restricts blocking to some categories (ids, a main
    id covers its subcategories); ``allow_categories`` lets some through even when unsafe.
    ``labels`` chooses which labels count: both (default), the request only, or the
    response only.
    """

    model_config = ConfigDict(frozen=True)

    block_categories: frozenset[str] | None = Field(None, description="None: every category blocks")
    allow_categories: frozenset[str] = frozenset()
    out_of_policy: Literal["block", "allow"] = "block"
    unknown_category: Literal["block", "allow"] = Field(
        "block", description="unsafe with no category, or an id not in the policy shown"
    )
    labels: Literal["both", "request", "response"] = "both"
    fail_mode: Literal["closed", "open"] = "closed"
    input_errors: Literal["block", "fail_mode"] = Field(
        "block",
        description="bad input (corrupt or oversized image, malformed data URL...) blocks even in "
        "fail-open mode, so an attacker cannot get content through unjudged by attaching a broken "
        "image; 'fail_mode' makes input errors follow fail_mode like transport errors",
    )
    unjudgeable: Literal["block", "allow"] = Field(
        "block", description="content the judge cannot judge (e.g. images for the text-only lite judge)"
    )

    @field_validator("block_categories", "allow_categories", mode="before")
    @classmethod
    def _norm_ids(cls, v: object) -> object:
        if v is None:
            return None
        if isinstance(v, str):
            v = [v]
        out = set()
        for item in v:  # type: ignore[attr-defined]
            nid = normalize_id(str(item))
            if nid is None:
                raise ValueError(f"{item!r} is not a category id (C<k> or C<k>S<j>)")
            out.add(nid)
        return frozenset(out)

    # ------------------------------------------------------------------
    def relevant_unsafe(self, verdict: Verdict) -> bool:
        if self.labels == "request":
            return verdict.request_unsafe
        if self.labels == "response":
            return verdict.response_unsafe
        return verdict.unsafe

    def decide(self, verdict: Verdict, check: CheckName = "conversation") -> Decision:
        if not self.relevant_unsafe(verdict):
            if verdict.unreadable and verdict.request is None and verdict.response is None:
                return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                                reason=f"not judged: text in a language the judge cannot read "
                                       f"({verdict.unreadable}); allowed by the judge's unreadable='allow' setting")
            which = {"both": "request and response", "request": "request", "response": "response"}[self.labels]
            return Decision(status="allowed", allowed=True, reason=f"{which} judged safe", verdict=verdict, check=check)
        what = verdict.summary()
        if verdict.is_out_of_policy:
            if self.out_of_policy == "allow":
                return Decision(
                    status="allowed", allowed=True, verdict=verdict, check=check,
                    reason=f"out-of-policy risk {verdict.description!r} allowed by policy",
                )
            return Decision(
                status="blocked", allowed=False, verdict=verdict, check=check,
                reason=f"unsafe: out-of-policy risk {verdict.description!r} ({what})",
            )
        cid = verdict.category_id
        if cid is None or not verdict.category_in_policy:
            if self.unknown_category == "allow":
                return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                                reason="unsafe with no known category; allowed by policy")
            return Decision(status="blocked", allowed=False, verdict=verdict, check=check,
                            reason=f"unsafe ({what})")
        if self.allow_categories and _id_matches(cid, self.allow_categories):
            return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                            reason=f"category {cid} is allowlisted")
        if self.block_categories is not None and not _id_matches(cid, self.block_categories):
            return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                            reason=f"category {cid} is not in block_categories")
        return Decision(status="blocked", allowed=False, verdict=verdict, check=check, reason=f"unsafe ({what})")

    def decide_error(self, error: BaseException, check: CheckName = "conversation") -> Decision:
        """An error is never a verdict: it is turned into a block (closed) or an allow (open)."""
        from .errors import InputError, UnjudgeableInputError

        kind = getattr(error, "kind", type(error).__name__)
        raw = getattr(error, "raw", None)
        mode: Literal["closed", "open"]
        if isinstance(error, UnjudgeableInputError):
            allowed = self.unjudgeable == "allow"
            mode = "open" if allowed else "closed"
        elif isinstance(error, InputError) and self.input_errors == "block":
            allowed, mode = False, "closed"
        else:
            allowed = self.fail_mode == "open"
            mode = self.fail_mode
        msg = f"{type(error).__name__}: {error}" if not isinstance(error, ProGuardError) else str(error)
        if allowed:
            logger.warning("proguard guard failed (%s); allowing because fail_mode is open: %s", kind, msg)
        reason = f"guard error ({kind}): {msg}; {'allowed (fail-open)' if allowed else 'blocked (fail-closed)'}"
        return Decision(
            status="error", allowed=allowed, reason=reason, error_type=kind, error_message=msg,
            raw=raw, fail_mode_applied=mode, check=check,
        )


__all__ = ["CheckName", "Policy"]
