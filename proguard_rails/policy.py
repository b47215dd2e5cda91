"""Policy: what a verdict or an error means for the application (allow or block)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ProGuardError
from .taxonomy import normalize_id
from .verdict import Decision, Verdict

logger = logging.getLogger("proguard_rails.policy")

CheckName = Literal["input", "output", "conversation", "tool_call", "tool_result"]
#: what a policy does with an unsafe verdict: block it, let it through, or let it through flagged
Action = Literal["block", "allow", "flag"]


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

    ``category_actions`` gives a category (or a main category and all its subcategories) its
    own action, ``block``, ``allow`` or ``flag`` (allowed, with ``Decision.flagged``); the most
    specific id wins, and it wins over ``allow_categories`` / ``block_categories``.
    ``default_action`` applies to unsafe in-policy categories nothing else names.
    ``thresholds`` (for judges that give scores, e.g. the lite judge) is the minimum unsafe
    probability for a category's action to apply; below it the check is allowed and the reason
    says so. A verdict without scores is never overridden by a threshold. Policies are usually
    loaded from a file: see ``proguard_rails.config``.
    """

    model_config = ConfigDict(frozen=True)

    block_categories: frozenset[str] | None = Field(None, description="None: every category blocks")
    allow_categories: frozenset[str] = frozenset()
    out_of_policy: Action = "block"
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
    category_actions: Mapping[str, Action] = Field(
        default_factory=dict, description="per-category action; the most specific id wins"
    )
    default_action: Action = Field("block", description="unsafe in-policy categories nothing else names")
    thresholds: Mapping[str, float] = Field(
        default_factory=dict,
        description="per-category minimum unsafe probability (judges with scores only); most specific id wins",
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

    @field_validator("category_actions", "thresholds", mode="before")
    @classmethod
    def _norm_keys(cls, v: object) -> object:
        if not isinstance(v, Mapping):
            return v
        out = {}
        for key, value in v.items():
            nid = normalize_id(str(key))
            if nid is None:
                raise ValueError(f"{key!r} is not a category id (C<k> or C<k>S<j>)")
            out[nid] = value
        return out

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, v: Mapping[str, float]) -> Mapping[str, float]:
        for key, t in v.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold of {key} is {t}; thresholds are probabilities in [0, 1]")
        return v

    # ------------------------------------------------------------------
    @staticmethod
    def _most_specific(category_id: str, table: Mapping[str, object]) -> str | None:
        """The key of ``table`` that governs ``category_id``: itself, else its main category."""
        if category_id in table:
            return category_id
        main = category_id.split("S", 1)[0]
        return main if main in table else None

    def _score(self, verdict: Verdict) -> float | None:
        """The judge's unsafe probability for the labels this policy reads (None: no scores)."""
        s = verdict.scores or {}
        keys = {"both": ("request_unsafe", "response_unsafe"), "request": ("request_unsafe",),
                "response": ("response_unsafe",)}[self.labels]
        values = [s[k] for k in keys if k in s]
        return max(values) if values else None

    def _acted(self, action: Action, verdict: Verdict, check: CheckName, what: str, why: str) -> Decision:
        if action == "block":
            return Decision(status="blocked", allowed=False, verdict=verdict, check=check, reason=f"unsafe ({what})")
        if action == "flag":
            return Decision(status="allowed", allowed=True, flagged=True, verdict=verdict, check=check,
                            reason=f"flagged: {why} ({what})")
        return Decision(status="allowed", allowed=True, verdict=verdict, check=check, reason=why)
    def relevant_unsafe(self, verdict: Verdict) -> bool:
        if self.labels == "request":
            return verdict.request_unsafe
        if self.labels == "response":
            return verdict.response_unsafe
        return verdict.unsafe

    def decide(self, verdict: Verdict, check: CheckName = "conversation", *,
               has_response: bool | None = None) -> Decision:
        """What this policy does with ``verdict``. ``has_response`` (whether a response was
        judged at all) only words the reason of a safe decision."""
        if not self.relevant_unsafe(verdict):
            if verdict.unreadable and verdict.request is None and verdict.response is None:
                return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                                reason=f"not judged: text in a language the judge cannot read "
                                       f"({verdict.unreadable}); allowed by the judge's unreadable='allow' setting")
            return Decision(status="allowed", allowed=True, reason=f"{self._judged(verdict, has_response)} judged safe",
                            verdict=verdict, check=check)
        what = verdict.summary()
        if verdict.is_out_of_policy:
            if self.out_of_policy == "block":
                return Decision(
                    status="blocked", allowed=False, verdict=verdict, check=check,
                    reason=f"unsafe: out-of-policy risk {verdict.description!r} ({what})",
                )
            if self.out_of_policy == "flag":
                return Decision(status="allowed", allowed=True, flagged=True, verdict=verdict, check=check,
                                reason=f"flagged: out-of-policy risk {verdict.description!r} ({what})")
            return Decision(
                status="allowed", allowed=True, verdict=verdict, check=check,
                reason=f"out-of-policy risk {verdict.description!r} allowed by policy",
            )
        cid = verdict.category_id
        if cid is None or not verdict.category_in_policy:
            if self.unknown_category == "allow":
                return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                                reason="unsafe with no known category; allowed by policy")
            return Decision(status="blocked", allowed=False, verdict=verdict, check=check,
                            reason=f"unsafe ({what})")
        tkey = self._most_specific(cid, self.thresholds)
        if tkey is not None:
            score = self._score(verdict)
            if score is not None and score < self.thresholds[tkey]:
                return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                                reason=f"category {cid}: unsafe probability {score:.3f} is below the "
                                       f"policy threshold {self.thresholds[tkey]:g} of {tkey}")
        akey = self._most_specific(cid, self.category_actions)
        if akey is not None:
            action = self.category_actions[akey]
            return self._acted(action, verdict, check, what, f"category {cid} is set to {action} by policy ({akey})")
        if self.allow_categories and _id_matches(cid, self.allow_categories):
            return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                            reason=f"category {cid} is allowlisted")
        if self.block_categories is not None and not _id_matches(cid, self.block_categories):
            return Decision(status="allowed", allowed=True, verdict=verdict, check=check,
                            reason=f"category {cid} is not in block_categories")
        return self._acted(self.default_action, verdict, check, what,
                           f"category {cid} gets the default action {self.default_action}")

    def _judged(self, verdict: Verdict, has_response: bool | None) -> str:
        """Which parts were judged, for the reason of a safe decision."""
        if self.labels != "both":
            return self.labels
        from .verdict import Modality

        if verdict.modality == Modality.IMAGE:
            return "image"
        if has_response is False or (has_response is None and verdict.response is None):
            return "request"
        return "request and response"

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


__all__ = ["Action", "CheckName", "Policy"]
