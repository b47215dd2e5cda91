"""One training sample schema for text, image and text-image data.

Every ingester produces :class:`GuardSample`; every export (TRL, verl) and the reward
targets are built from it, so a field means the same thing at every stage.

Conventions:

* ``modality`` is derived from the content, exactly as the core derives it for a
  ``GuardRequest`` (images and text: ``text-image``; images only: ``image``; else
  ``text``). Setting it explicitly is allowed but must agree with the content.
* The image modality has a single label (``request_label``); ``response_label`` is
  forced to ``None`` there, as the released image prompt has no Response line.
* Text samples without a response get ``response_label="safe"``: the model still answers
  ``Response:safe`` for an empty agent turn. A sample *with* a response must carry its
  label; it is never guessed.
* ``category`` is a taxonomy id (``C3S2`` or ``C3``); ``None`` for safe samples or when
  the source does not say.
* Out-of-policy fields: ``held_out`` lists the ids removed from the policy rendered into
  this sample's prompt; ``target_name`` and ``synonyms`` are the free-text name the model
  should produce instead of an id (see :mod:`training.data.ood`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from proguard_rails.taxonomy import Taxonomy, normalize_id
from proguard_rails.verdict import Modality

Label = Literal["safe", "unsafe"]
ImageRef = str | bytes  # a file path, or encoded image bytes


def _content_modality(request: str, response: str | None, images: Sequence[Any]) -> Modality:
    if images:
        if request.strip() or (response or "").strip():
            return Modality.TEXT_IMAGE
        return Modality.IMAGE
    return Modality.TEXT


class GuardSample(BaseModel):
    """A labelled example for training a guard (see the module docstring for conventions)."""

    model_config = ConfigDict(validate_assignment=False)

    id: str = Field("", description="stable id; derived from the content when empty")
    request: str = Field("", description="the user's text (empty for image-only samples)")
    response: str | None = Field(None, description="the agent's text, if any")
    images: list[ImageRef] = Field(default_factory=list, description="image file paths or encoded bytes")
    request_label: Label
    response_label: Label | None = None
    category: str | None = Field(None, description="taxonomy id (C<k> or C<k>S<j>) of the risk")
    modality: Modality | None = None
    source: str = ""
    # out-of-policy task
    held_out: list[str] = Field(default_factory=list, description="ids removed from this sample's policy")
    target_name: str | None = Field(None, description="free-text risk name expected when held out")
    synonyms: list[str] = Field(default_factory=list, description="synonym bank of target_name")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("category", mode="before")
    @classmethod
    def _norm_category(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        nid = normalize_id(str(v))
        if nid is None:
            raise ValueError(f"category {v!r} is not a taxonomy id (C<k> or C<k>S<j>); map names with a mapping file")
        return nid

    @field_validator("held_out", mode="before")
    @classmethod
    def _norm_held_out(cls, v: Any) -> Any:
        if v is None:
            return []
        out = []
        for item in v:
            nid = normalize_id(str(item))
            if nid is None:
                raise ValueError(f"held_out entry {item!r} is not a taxonomy id")
            out.append(nid)
        return out

    @field_validator("images", mode="before")
    @classmethod
    def _norm_images(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, (str, bytes, Path)):
            v = [v]
        out: list[Any] = []
        for item in v:
            if isinstance(item, Path):
                out.append(str(item))
            elif isinstance(item, dict):  # HF datasets / verl style {"bytes": ..., "path": ...}
                if isinstance(item.get("b64"), str):  # our JSON form (see _images_json)
                    out.append(base64.b64decode(item["b64"]))
                elif item.get("bytes"):
                    out.append(bytes(item["bytes"]))
                elif item.get("path"):
                    out.append(str(item["path"]))
                else:
                    raise ValueError("image dict without bytes or path")
            else:
                out.append(item)
        return out

    @field_serializer("images", when_used="json")
    def _images_json(self, images: list[ImageRef]) -> list[Any]:
        # Tag bytes so a base64 payload is never mistaken for a file path when read back.
        return [{"b64": base64.b64encode(i).decode("ascii")} if isinstance(i, bytes) else i for i in images]

    @model_validator(mode="after")
    def _derive(self) -> GuardSample:
        derived = _content_modality(self.request, self.response, self.images)
        if self.modality is not None and Modality(self.modality) != derived:
            raise ValueError(
                f"modality {Modality(self.modality).value!r} does not match the content ({derived.value}: "
                f"{len(self.images)} image(s), {'some' if self.request.strip() or (self.response or '').strip() else 'no'} text)"
            )
        self.modality = derived
        if not self.request.strip() and not (self.response or "").strip() and not self.images:
            raise ValueError("empty sample: no text and no image")
        if derived == Modality.IMAGE:
            self.response_label = None
        elif self.response_label is None:
            if (self.response or "").strip():
                raise ValueError("response_label is required when the sample has a response")
            self.response_label = "safe"
        if self.target_name is not None and not self.target_name.strip():
            self.target_name = None
        if self.target_name is not None and not self.unsafe:
            raise ValueError("an out-of-policy target needs an unsafe label")
        if not self.id:
            self.id = self.content_hash()[:16]
        return self

    # ------------------------------------------------------------------ derived facts
    @property
    def unsafe(self) -> bool:
        """Unsafe overall: the single label for images, either label otherwise."""
        return self.request_label == "unsafe" or self.response_label == "unsafe"

    @property
    def is_out_of_policy(self) -> bool:
        return self.target_name is not None

    def image_hashes(self) -> list[str]:
        """sha256 of each image's bytes (paths are read)."""
        return [hashlib.sha256(image_bytes(img)).hexdigest() for img in self.images]

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.request.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
        h.update((self.response if self.response is not None else "\x00").encode("utf-8", "surrogatepass"))
        for img in self.images:
            h.update(b"\x1e")
            h.update(img if isinstance(img, bytes) else str(img).encode())
        return h.hexdigest()

    def target_category(self, taxonomy: Taxonomy | None = None) -> str | None:
        """The id the model should answer, at the granularity its prompt asks for.

        The released text-image prompt asks for a main category (``C*``), the text and
        image prompts for a subcategory; a ``C3S2`` sample therefore expects ``C3`` in
        text-image mode.
        """
        if self.category is None:
            return None
        if self.modality == Modality.TEXT_IMAGE and "S" in self.category:
            return self.category.split("S", 1)[0]
        return self.category

    def policy(self, taxonomy: Taxonomy | None = None) -> Taxonomy:
        """The policy rendered into this sample's prompt (the base one minus ``held_out``)."""
        tax = taxonomy or Taxonomy.default()
        return tax.hold_out(self.held_out) if self.held_out else tax

    def reward_target(self, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
        """The ground truth the reward needs (JSON-serializable; see ``training.rewards``)."""
        return {
            "modality": Modality(self.modality).value if self.modality else "text",
            "request_label": self.request_label,
            "response_label": self.response_label,
            "category": None if self.is_out_of_policy else self.target_category(taxonomy),
            "held_out": list(self.held_out),
            "target_name": self.target_name,
            "synonyms": list(self.synonyms),
        }

    def to_json(self) -> str:
        return self.model_dump_json()


def image_bytes(img: ImageRef) -> bytes:
    """Encoded bytes of an image reference (reads a path)."""
    if isinstance(img, bytes):
        return img
    path = Path(img)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"image {img!r} cannot be read: {exc}") from exc


def write_samples(samples: Iterable[GuardSample], path: str | Path) -> Path:
    """Write samples as JSONL in this schema (image bytes as ``{"b64": ...}``, paths as they are)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(s.model_dump_json())
            fh.write("\n")
    return p


def read_samples(path: str | Path) -> list[GuardSample]:
    """Read a JSONL file written by :func:`write_samples`."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(GuardSample.model_validate_json(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
    return out


def dumps_target(target: dict[str, Any]) -> str:
    return json.dumps(target, ensure_ascii=False, sort_keys=True)


__all__ = [
    "GuardSample",
    "ImageRef",
    "Label",
    "dumps_target",
    "image_bytes",
    "read_samples",
    "write_samples",
]
