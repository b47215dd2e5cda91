"""Request bodies of the server's endpoints (validated with pydantic; errors become HTTP 400)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(min_length=1)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: ImageURL


Part = TextPart | ImagePart


class ModerationRequest(BaseModel):
    """``POST /v1/moderations`` (OpenAI-compatible). Unknown top-level keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str] | list[Part]
    model: str | None = None
    include_raw: bool = Field(False, description="extension: add the model's raw answer to each proguard field "
                                                "(only if the server allows it; send it with the SDK's extra_body)")

    @model_validator(mode="before")
    @classmethod
    def _input_present(cls, data: Any) -> Any:
        if isinstance(data, dict) and "input" not in data:
            raise ValueError("'input' is required: a string, a list of strings, or a list of text/image_url parts")
        return data


CheckName = Literal["conversation", "input", "output", "tool_call", "tool_result"]


class CheckRequest(BaseModel):
    """``POST /v1/check``: the native call. One of ``request``/``response``/``messages``/``images``
    for conversation checks, or the tool fields for ``tool_call`` / ``tool_result``."""

    model_config = ConfigDict(extra="forbid")

    request: str | None = Field(None, description="the user's request")
    response: str | None = Field(None, description="the agent's response, judged with the request")
    messages: list[dict[str, Any]] | None = Field(None, description="OpenAI-style chat messages")
    images: list[str] = Field(default_factory=list, description="data URLs (http(s) URLs if the guard allows them)")
    check: CheckName = "conversation"
    tool_name: str | None = None
    tool_arguments: Any = None
    tool_output: Any = None
    context: str | None = Field(None, description="tool checks: the user's request the tool serves")
    include_raw: bool = Field(False, description="return the model's raw answer (if the server allows it)")

    @model_validator(mode="after")
    def _consistent(self) -> CheckRequest:
        if self.check in ("tool_call", "tool_result"):
            if not self.tool_name:
                raise ValueError(f"check {self.check!r} needs tool_name")
            if self.check == "tool_call" and self.tool_arguments is None:
                raise ValueError("check 'tool_call' needs tool_arguments (an object or a string)")
            if self.check == "tool_result" and self.tool_output is None:
                raise ValueError("check 'tool_result' needs tool_output")
            if self.request is not None or self.response is not None or self.messages is not None:
                raise ValueError("tool checks take tool_name, tool_arguments/tool_output and context, "
                                 "not request/response/messages")
            if self.check == "tool_call" and self.images:
                raise ValueError("check 'tool_call' takes no images")
            return self
        if self.tool_name is not None or self.tool_arguments is not None or self.tool_output is not None:
            raise ValueError("tool_name/tool_arguments/tool_output need check 'tool_call' or 'tool_result'")
        if self.messages is not None and (self.request is not None or self.response is not None):
            raise ValueError("give either messages or request/response, not both")
        if self.messages is None and not (self.request or self.response or self.images):
            raise ValueError("nothing to check: give request (and optionally response), messages, or images")
        return self


__all__ = ["CheckRequest", "ImagePart", "ModerationRequest", "TextPart"]
