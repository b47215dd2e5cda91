"""Verdict (what the judge said) and Decision (what the policy does with it)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["safe", "unsafe"]


class Modality(str, Enum):
    """The three prompt protocols of the released checkpoints."""

    TEXT = "text"
    IMAGE = "image"
    TEXT_IMAGE = "text-image"

    def __str__(self) -> str:  # "text-image", not "Modality.TEXT_IMAGE"
        return self.value


class Verdict(BaseModel):
    """One judgement. The same type for generative, lite and cascade judges."""

    model_config = ConfigDict(frozen=True)

    modality: Modality
    request: Label | None = Field(None, description="request label; None if the judge did not label it")
    response: Label | None = Field(
        None, description="response label; None in image mode or when the judge gave none"
    )
    category_id: str | None = Field(None, description="C<k> or C<k>S<j> as answered, when it is an id")
    category_name: str | None = Field(None, description="main category name (from the policy shown)")
    subcategory_name: str | None = None
    is_out_of_policy: bool = Field(False, description="the model named a risk that is not in the policy shown")
    description: str | None = Field(None, description="free-text name of the out-of-policy risk")
    category_in_policy: bool = Field(
        True, description="False when the answered id does not exist in the policy shown"
    )
    reasoning: str | None = None
    raw: str | None = Field(None, description="the model's text exactly as received")
    judge: str = Field("", description="which judge produced it (generative:<model>, lite, cascade:...)")
    latency_s: float | None = None
    truncated: bool = Field(False, description="input was truncated before judging (see inputs.truncate_text)")
    neutralized_markers: int = Field(0, description="protocol markers neutralized in the input text")
    scores: dict[str, float] | None = Field(None, description="calibrated probabilities, where the judge has them")
    escalated: bool | None = Field(None, description="cascade: whether the generative judge was consulted")
    unreadable: str | None = Field(
        None, description="language code of text the judge could not read (the lite judge reads English); "
        "labels it left empty were not judged, not 'safe'"
    )
    cached: bool = False

    @property
    def request_unsafe(self) -> bool:
        return self.request == "unsafe"

    @property
    def response_unsafe(self) -> bool:
        return self.response == "unsafe"

    @property
    def unsafe(self) -> bool:
        return self.request_unsafe or self.response_unsafe

    @property
    def category(self) -> str | None:
        """Category id, or the out-of-policy description; ``None`` if there is none."""
        return self.category_id if self.category_id else self.description

    @property
    def main_category_id(self) -> str | None:
        return self.category_id.split("S", 1)[0] if self.category_id else None

    def summary(self) -> str:
        parts = [f"request={self.request or '-'}"]
        if self.modality != Modality.IMAGE:
            parts.append(f"response={self.response or '-'}")
        if self.category_id:
            name = self.subcategory_name or self.category_name
            parts.append(f"category={self.category_id}" + (f" ({name})" if name else ""))
        elif self.is_out_of_policy:
            parts.append(f"out-of-policy={self.description!r}")
        return " ".join(parts)


Status = Literal["allowed", "blocked", "error"]


class Decision(BaseModel):
    """The policy's decision on one check.

    ``status`` is what happened: allowed, blocked (an unsafe verdict), or error (the guard
    could not judge). ``allowed`` is what to do: an error is turned into a block by the
    default fail-closed mode, into an allow by fail-open; ``fail_mode_applied`` says which.
    """

    model_config = ConfigDict(frozen=True)

    status: Status
    allowed: bool
    reason: str
    verdict: Verdict | None = None
    error_type: str | None = None
    error_message: str | None = None
    raw: str | None = Field(None, description="the model's raw text, kept on parse errors")
    fail_mode_applied: Literal["closed", "open"] | None = None
    flagged: bool = Field(False, description="allowed, and the policy's action for this risk is 'flag'")
    check: Literal["input", "output", "conversation", "tool_call", "tool_result"] = "conversation"
    metadata: dict[str, Any] = Field(default_factory=dict)
    not_judged: list[str] = Field(
        default_factory=list,
        description="content that came with the input but was not judged (files, audio, skipped system "
        "messages...); empty when everything was judged",
    )

    @property
    def blocked(self) -> bool:
        return not self.allowed

    @property
    def is_error(self) -> bool:
        return self.status == "error"

    @property
    def category_id(self) -> str | None:
        return self.verdict.category_id if self.verdict else None

    @property
    def is_out_of_policy(self) -> bool:
        return bool(self.verdict and self.verdict.is_out_of_policy)

    @property
    def description(self) -> str | None:
        return self.verdict.description if self.verdict else None

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly view used by the CLI, adapters' metadata and logs."""
        v = self.verdict
        return {
            "decision": "allow" if self.allowed else "block",
            "status": self.status,
            "flagged": self.flagged,
            "reason": self.reason,
            "check": self.check,
            "modality": str(v.modality) if v else None,
            "request": v.request if v else None,
            "response": v.response if v else None,
            "category": v.category_id if v else None,
            "category_name": v.category_name if v else None,
            "subcategory_name": v.subcategory_name if v else None,
            "out_of_policy": v.is_out_of_policy if v else False,
            "description": v.description if v else None,
            "truncated": v.truncated if v else False,
            "judge": v.judge if v else None,
            "scores": v.scores if v else None,
            "error": self.error_message,
            "error_type": self.error_type,
            "fail_mode_applied": self.fail_mode_applied,
            "not_judged": list(self.not_judged),
            "unreadable": v.unreadable if v else None,
            "raw": self.raw if self.raw is not None else (v.raw if v else None),
        }


__all__ = ["Decision", "Label", "Modality", "Status", "Verdict"]
