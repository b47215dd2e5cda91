"""Mapping files: an external dataset's columns and label scheme onto :class:`GuardSample`.

A mapping is a small YAML file::

    source: my-moderation-set          # written into GuardSample.source
    columns:                           # where each field lives in a record (dotted paths allowed)
      id: uid
      request: prompt
      response: response
      images: image_path               # a path, a list of paths, bytes, or {"bytes": ...}
      request_label: prompt_harm
      response_label: response_harm
      category: category
    labels:                            # extra label spellings (case-insensitive), added to the defaults
      safe: [benign, ok]
      unsafe: [harmful, violating]
    categories:                        # source category -> taxonomy id or name, or `safe`
      hate_speech: C5S1
      "Violent Crimes": C4
      none: safe
    unknown_category: error            # error | drop | keep  (keep: unsafe, category unknown)
    image_root: ./images               # relative image paths resolve here (default: the data file's folder)
    label_from_category: true          # no label column: category `safe` means safe, any other unsafe

Without a mapping the record keys are the schema's own field names (``request``,
``response``, ``images``, ``request_label``, ...), with common aliases (``prompt``,
``image``, ``label``) accepted. Category values already written as taxonomy ids or
names need no ``categories`` table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from proguard_rails.errors import ConfigurationError
from proguard_rails.taxonomy import Taxonomy

from .schema import Label

_SAFE = {"safe", "benign", "harmless", "unharmful", "non-toxic", "nontoxic", "0", "false", "no", "allowed", "ok"}
_UNSAFE = {"unsafe", "harmful", "toxic", "flagged", "1", "true", "yes", "violating", "blocked"}
_EMPTY = {"", "none", "null", "nan", "n/a", "na", "-"}

#: Default column names tried for each field when the mapping does not name one.
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id", "uid", "sample_id"),
    "request": ("request", "prompt", "user", "query", "question", "instruction", "text"),
    "response": ("response", "agent", "answer", "completion", "output"),
    "images": ("images", "image", "image_path", "image_paths", "file", "file_name", "filename", "path"),
    "request_label": ("request_label", "prompt_label", "query_label", "label", "safety_label"),
    "response_label": ("response_label",),
    "category": ("category", "category_id", "harm_category"),
    "modality": ("modality",),
    "source": ("source", "dataset"),
    "held_out": ("held_out",),
    "target_name": ("target_name",),
    "synonyms": ("synonyms",),
}

UnknownCategory = Literal["error", "drop", "keep"]


def _norm(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path (``meta.label``); ``None`` when any part is missing."""
    cur: Any = record
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, (list, tuple)) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


class SkipRecord(Exception):
    """Raised by the mapping for a record to drop (``unknown_category: drop``)."""


@dataclass
class LabelMapping:
    """Translates one external scheme into the schema (see the module docstring)."""

    source: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    safe_values: set[str] = field(default_factory=lambda: set(_SAFE))
    unsafe_values: set[str] = field(default_factory=lambda: set(_UNSAFE))
    categories: dict[str, str | None] = field(default_factory=dict)  # normalized key -> id | None (safe)
    unknown_category: UnknownCategory = "error"
    image_root: str | None = None
    label_from_category: bool = True
    taxonomy: Taxonomy = field(default_factory=Taxonomy.default)
    unmapped: Counter[str] = field(default_factory=Counter)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path, taxonomy: Taxonomy | None = None) -> LabelMapping:
        p = Path(path)
        if not p.exists():
            raise ConfigurationError(f"mapping file {p} does not exist")
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        mapping = cls.from_dict(data, taxonomy=taxonomy, origin=str(p))
        if mapping.image_root and not Path(mapping.image_root).is_absolute():
            mapping.image_root = str((p.parent / mapping.image_root).resolve())
        return mapping

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, taxonomy: Taxonomy | None = None,
                  origin: str = "mapping") -> LabelMapping:
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{origin}: a mapping file is a YAML mapping (source/columns/labels/categories)")
        known = {"source", "columns", "labels", "categories", "unknown_category", "image_root", "label_from_category"}
        extra = set(data) - known
        if extra:
            raise ConfigurationError(f"{origin}: unknown keys {sorted(extra)}; allowed: {sorted(known)}")
        tax = taxonomy or Taxonomy.default()
        columns = {str(k): str(v) for k, v in (data.get("columns") or {}).items() if v is not None}
        bad = set(columns) - set(DEFAULT_COLUMNS)
        if bad:
            raise ConfigurationError(f"{origin}: unknown schema fields in columns: {sorted(bad)}; "
                                     f"fields: {sorted(DEFAULT_COLUMNS)}")
        safe = set(_SAFE)
        unsafe = set(_UNSAFE)
        labels = data.get("labels") or {}
        for key, target in (("safe", safe), ("unsafe", unsafe)):
            values = labels.get(key) or []
            if isinstance(values, (str, int, bool)):
                values = [values]
            target.update(_norm(v) for v in values)
        clash = safe & unsafe
        if clash:
            raise ConfigurationError(f"{origin}: label values listed as both safe and unsafe: {sorted(clash)}")
        cats: dict[str, str | None] = {}
        for key, value in (data.get("categories") or {}).items():
            if value is None or _norm(value) in ("safe", "none", ""):
                cats[_norm(key)] = None
                continue
            entry = tax.find(str(value))
            if entry is None:
                raise ConfigurationError(
                    f"{origin}: category {key!r} maps to {value!r}, which is not an id or name in the taxonomy"
                )
            cats[_norm(key)] = entry.id
        unknown = data.get("unknown_category", "error")
        if unknown not in ("error", "drop", "keep"):
            raise ConfigurationError(f"{origin}: unknown_category must be error, drop or keep (got {unknown!r})")
        return cls(
            source=str(data.get("source") or ""),
            columns=columns,
            safe_values=safe,
            unsafe_values=unsafe,
            categories=cats,
            unknown_category=unknown,
            image_root=data.get("image_root"),
            label_from_category=bool(data.get("label_from_category", True)),
            taxonomy=tax,
        )

    # ------------------------------------------------------------------ reading one record
    def get(self, record: Mapping[str, Any], name: str) -> Any:
        """The raw value of schema field ``name`` in ``record`` (mapped column or default aliases)."""
        if name in self.columns:
            return _lookup(record, self.columns[name])
        for alias in DEFAULT_COLUMNS[name]:
            if alias in record and record[alias] is not None:
                return record[alias]
        return None

    def label(self, value: Any, what: str = "label") -> Label | None:
        if value is None:
            return None
        if isinstance(value, bool):
            return "unsafe" if value else "safe"
        if isinstance(value, float) and value != value:  # pandas NaN
            return None
        key = _norm(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            key = _norm(int(value)) if float(value).is_integer() else key
        if key in _EMPTY:
            return None
        if key in self.unsafe_values:
            return "unsafe"
        if key in self.safe_values:
            return "safe"
        raise ValueError(
            f"cannot read {what} {value!r} as safe/unsafe; add it under `labels:` in the mapping file"
        )

    def category(self, value: Any) -> tuple[bool, str | None]:
        """``(known, id)``: ``id`` is None for a value meaning safe; ``known`` False when unmapped.

        Raises :class:`SkipRecord` or ``ValueError`` for unmapped values, per ``unknown_category``.
        """
        if value is None or (isinstance(value, float) and value != value):
            return True, None
        if isinstance(value, (list, tuple)):
            for item in value:  # multi-label sources: the first mapped value wins
                known, cid = self.category(item)
                if cid is not None:
                    return known, cid
            return True, None
        key = _norm(value)
        if key in _EMPTY:
            return True, None
        if key in self.categories:
            return True, self.categories[key]
        head = key.split(":", 1)[0].strip()  # "O2: Violence" style labels
        if head in self.categories:
            return True, self.categories[head]
        entry = self.taxonomy.find(str(value).strip()) or self.taxonomy.find(head)
        if entry is not None:
            return True, entry.id
        self.unmapped[str(value)] += 1
        if self.unknown_category == "drop":
            raise SkipRecord(f"unmapped category {value!r}")
        if self.unknown_category == "keep":
            return False, None
        raise ValueError(
            f"category {value!r} is not in the mapping's `categories:` table nor in the taxonomy; map it, or set "
            "`unknown_category: drop` (skip such records) or `keep` (unsafe, category unknown)"
        )

    def resolve_image(self, ref: Any, base: Path | None) -> Any:
        """Relative image paths resolve against ``image_root`` or the data file's folder."""
        if isinstance(ref, str) and not ref.startswith(("data:", "http://", "https://")) and len(ref) < 4096:
            p = Path(ref).expanduser()
            if not p.is_absolute():
                root = Path(self.image_root) if self.image_root else base
                if root is not None:
                    p = root / p
            return str(p)
        return ref


__all__ = ["DEFAULT_COLUMNS", "LabelMapping", "SkipRecord"]
