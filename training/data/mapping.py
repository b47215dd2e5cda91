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
    categories:                        # source code -> taxonomy id or name, or safe | unsafe | ignore
      hate_speech: C5S1
      "Violent Crimes": C4
      none: safe                       # the record is safe
      other_harm: unsafe               # unsafe, no category (no category reward)
      C009: ignore                     # carries no label: the record's other codes decide
    category_scheme: table             # table | taxonomy | both (default: table if a table is given)
    unknown_category: error            # error | drop: a code the scheme does not know
    category_precedence: [C8S1, C4S2]  # several codes -> different ids: the first listed wins
    constants:                         # a value for every record (a source without that column)
      request_label: unsafe
    image_root: ./images               # relative image paths resolve here (default: the data file's folder)
    label_from_category: true          # no label column: category `safe` means safe, any other unsafe

Without a mapping the record keys are the schema's own field names (``request``,
``response``, ``images``, ``request_label``, ...), with common aliases (``prompt``,
``image``, ``label``) accepted.

Category codes are read by exactly one explicit scheme, never guessed:

* ``table``: only the ``categories:`` table (keys case-insensitive; ``"O2: Violence"`` also
  matches a key ``O2``). A code that merely looks like a taxonomy id is *not* read as one:
  Do-Not-Answer's intent ``C009`` is not ProGuard's ``C9``.
* ``taxonomy``: the value is this taxonomy's own id written canonically (``C3S1``, ``c8``;
  not ``C009``) or the exact name of an entry (``Weapons``). The default without a table.
* ``both``: the table first, then the taxonomy's canonical ids and names.

A code the scheme does not know is an error (``unknown_category: error``, the default) or
drops the record (``drop``); either way it is counted (``Ingested.unmapped``, and the
dropped records in ``Ingested.skipped``), and :func:`training.data.balance_report` shows
both. A multi-label value (a list of codes) takes the union of what its codes mean: ``safe``
and ``ignore`` codes add nothing, a main category listed with one of its own subcategories
is subsumed by it, and two different remaining ids are a conflict, resolved only by an
explicit ``category_precedence`` (else an error): never by the order of the list.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from proguard_rails.errors import ConfigurationError
from proguard_rails.taxonomy import Taxonomy, normalize_id

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

UnknownCategory = Literal["error", "drop"]
CategoryScheme = Literal["table", "taxonomy", "both"]

#: Table values with a meaning of their own (anything else must be a taxonomy id or name).
_TABLE_SAFE = {"safe", "none", ""}
_TABLE_UNSAFE = "unsafe"  # unsafe, no category
_TABLE_IGNORE = "ignore"  # no label information

# A taxonomy id written canonically: no zero padding (``C009`` is some other scheme's code).
_CANONICAL_ID = re.compile(r"^c([1-9][0-9]*)(?:s([1-9][0-9]*))?$", re.IGNORECASE)
_UNSAFE_NO_CATEGORY = "__unsafe__"
_IGNORE = "__ignore__"


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
    # normalized code -> taxonomy id, None (safe), _UNSAFE_NO_CATEGORY or _IGNORE
    categories: dict[str, str | None] = field(default_factory=dict)
    unknown_category: UnknownCategory = "error"
    category_scheme: CategoryScheme | None = None  # None: table if a table is given, else taxonomy
    category_precedence: tuple[str, ...] = ()
    constants: dict[str, Any] = field(default_factory=dict)
    image_root: str | None = None
    label_from_category: bool = True
    taxonomy: Taxonomy = field(default_factory=Taxonomy.default)
    unmapped: Counter[str] = field(default_factory=Counter)

    @property
    def scheme(self) -> CategoryScheme:
        return self.category_scheme or ("table" if self.categories else "taxonomy")

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
        known = {"source", "columns", "labels", "categories", "unknown_category", "image_root", "label_from_category",
                 "category_scheme", "category_precedence", "constants"}
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
            v = "" if value is None else _norm(value)
            if v in _TABLE_SAFE:
                cats[_norm(key)] = None
            elif v == _TABLE_UNSAFE:
                cats[_norm(key)] = _UNSAFE_NO_CATEGORY
            elif v == _TABLE_IGNORE:
                cats[_norm(key)] = _IGNORE
            else:
                entry = _taxonomy_entry(tax, str(value))
                if entry is None:
                    raise ConfigurationError(
                        f"{origin}: category {key!r} maps to {value!r}, which is not an id or name in the taxonomy "
                        "(nor safe, unsafe or ignore)"
                    )
                cats[_norm(key)] = entry.id
        unknown = data.get("unknown_category", "error")
        if unknown == "keep":
            raise ConfigurationError(
                f"{origin}: unknown_category: keep is gone (it labelled every unmapped code unsafe); list the codes "
                "under `categories:` (an id, safe, unsafe for 'unsafe without a category', or ignore), or use drop"
            )
        if unknown not in ("error", "drop"):
            raise ConfigurationError(f"{origin}: unknown_category must be error or drop (got {unknown!r})")
        scheme = data.get("category_scheme")
        if scheme is not None and scheme not in ("table", "taxonomy", "both"):
            raise ConfigurationError(f"{origin}: category_scheme must be table, taxonomy or both (got {scheme!r})")
        if scheme in ("table", "both") and not cats:
            raise ConfigurationError(f"{origin}: category_scheme: {scheme} needs a `categories:` table")
        precedence = []
        for item in data.get("category_precedence") or []:
            entry = _taxonomy_entry(tax, str(item))
            if entry is None:
                raise ConfigurationError(f"{origin}: category_precedence entry {item!r} is not a taxonomy id or name")
            precedence.append(entry.id)
        mapping = cls(
            source=str(data.get("source") or ""),
            columns=columns,
            safe_values=safe,
            unsafe_values=unsafe,
            categories=cats,
            unknown_category=unknown,
            category_scheme=scheme,
            category_precedence=tuple(precedence),
            image_root=data.get("image_root"),
            label_from_category=bool(data.get("label_from_category", True)),
            taxonomy=tax,
        )
        constants = data.get("constants") or {}
        if not isinstance(constants, Mapping):
            raise ConfigurationError(f"{origin}: constants is a mapping of schema field -> value")
        allowed = {"request_label", "response_label", "category", "source"}
        bad = set(constants) - allowed
        if bad:
            raise ConfigurationError(f"{origin}: constants may set {sorted(allowed)}, not {sorted(bad)}")
        both = set(constants) & set(columns)
        if both:
            raise ConfigurationError(f"{origin}: {sorted(both)} set both as a column and as a constant; keep one")
        try:
            for key in ("request_label", "response_label"):
                if key in constants and mapping.label(constants[key], f"constants.{key}") is None:
                    raise ValueError(f"constants.{key} must be safe or unsafe")
            if "category" in constants:
                mapping.category(constants["category"])
        except (ValueError, SkipRecord) as exc:
            raise ConfigurationError(f"{origin}: {exc}") from None
        mapping.unmapped.clear()
        mapping.constants = dict(constants)
        return mapping

    # ------------------------------------------------------------------ reading one record
    def get(self, record: Mapping[str, Any], name: str) -> Any:
        """The raw value of schema field ``name`` in ``record`` (constant, mapped column or default aliases)."""
        if name in self.constants:
            return self.constants[name]
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

    def category(self, value: Any) -> tuple[Label | None, str | None]:
        """``(label the codes imply, taxonomy id)`` for a record's category value.

        ``(None, None)``: no value, or only ``ignore`` codes; ``("safe", None)``: codes that
        mean safe; ``("unsafe", None)``: unsafe without a category (table value ``unsafe``);
        ``("unsafe", id)``: the category. Unknown codes raise :class:`SkipRecord`
        (``unknown_category: drop``) or ``ValueError`` (``error``), counted in ``unmapped``.
        """
        if isinstance(value, (list, tuple)):
            return self._combine([self._code(item) for item in value], value)
        meaning = self._code(value)
        if meaning is _NOTHING or meaning == _IGNORE:
            return None, None
        if meaning is None:
            return "safe", None
        if meaning == _UNSAFE_NO_CATEGORY:
            return "unsafe", None
        return "unsafe", meaning

    def _code(self, value: Any) -> Any:
        """What one code means: an id, None (safe), _UNSAFE_NO_CATEGORY, _IGNORE or _NOTHING (empty)."""
        if value is None or (isinstance(value, float) and value != value):
            return _NOTHING
        key = _norm(value)
        if key in _EMPTY:
            return _NOTHING
        scheme = self.scheme
        if scheme in ("table", "both"):
            if key in self.categories:
                return self.categories[key]
            head = key.split(":", 1)[0].strip()  # "O2: Violence" style labels
            if head != key and head in self.categories:
                return self.categories[head]
        if scheme in ("taxonomy", "both"):
            entry = _taxonomy_entry(self.taxonomy, str(value))
            if entry is not None:
                return entry.id
        self.unmapped[str(value)] += 1
        if self.unknown_category == "drop":
            raise SkipRecord(f"unmapped category {value!r}")
        where = {"table": "the mapping's `categories:` table",
                 "taxonomy": "the taxonomy (a canonical id such as C3S1, or an entry's exact name)",
                 "both": "the `categories:` table nor the taxonomy"}[scheme]
        raise ValueError(
            f"category {value!r} is not in {where}; map it under `categories:` (an id, safe, unsafe or ignore), or "
            "set `unknown_category: drop` to drop such records"
        )

    def _combine(self, meanings: list[Any], value: Any) -> tuple[Label | None, str | None]:
        ids = {m for m in meanings if isinstance(m, str) and m not in (_UNSAFE_NO_CATEGORY, _IGNORE)}
        # A main category listed with one of its own subcategories adds nothing.
        ids -= {i for i in ids if "S" not in i and any(j.startswith(i + "S") for j in ids)}
        if len(ids) > 1:
            for preferred in self.category_precedence:
                if preferred in ids:
                    return "unsafe", preferred
            raise ValueError(
                f"category value {value!r} maps to several categories {sorted(ids)}; list them in "
                "`category_precedence:` (the first listed wins) or map the codes to one category"
            )
        if ids:
            return "unsafe", ids.pop()
        if _UNSAFE_NO_CATEGORY in meanings:
            return "unsafe", None
        if any(m is None for m in meanings):
            return "safe", None
        return None, None

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


def _taxonomy_entry(taxonomy: Taxonomy, value: str):  # type: ignore[no-untyped-def]
    """An entry by canonical id (``C3S1``, ``c8``; not ``C009``) or exact name (case-insensitive)."""
    text = value.strip()
    if _CANONICAL_ID.match(text):
        return taxonomy.find(text)
    if normalize_id(text) is not None:  # id-like but not canonical: another scheme's code
        return None
    return taxonomy.find(text)  # by name


_NOTHING = object()

__all__ = ["DEFAULT_COLUMNS", "LabelMapping", "SkipRecord"]
