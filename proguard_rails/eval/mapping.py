"""Category mappings: an external benchmark's label scheme onto the guard's taxonomy.

One YAML file per scheme (``proguard_rails/eval/mappings/<scheme>.yaml``)::

    scheme: beavertails
    source: "BeaverTails 330k: the 14 harm-category flags of column `category`"
    categories:
      animal_abuse: C9S2                 # one taxonomy id (subcategory or main category)
      child_abuse: [C11S1, C9S3]         # several acceptable ids, the first is primary
      controversial_topics,politics: null  # no counterpart: category stays unknown
    notes:
      controversial_topics,politics: "political opinion is not a harm in this taxonomy"

Keys are matched case-insensitively with surrounding spaces ignored; a key also matches a
value that starts with it and a colon (``O2`` matches ``O2: Violence, Harm, or Cruelty``).
A label the file does not list is reported (``unmapped``) and its category is unknown:
the sample still counts for binary classification, never for categorization.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from proguard_rails.errors import ConfigurationError
from proguard_rails.taxonomy import Taxonomy, normalize_id

_SPACES = re.compile(r"\s+")


def _norm(key: Any) -> str:
    return _SPACES.sub(" ", str(key)).strip().casefold()


def builtin_mappings() -> list[str]:
    """Names of the mapping files shipped with the harness."""
    root = resources.files("proguard_rails.eval").joinpath("mappings")
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


@dataclass
class CategoryMapping:
    """Maps a dataset's category labels to acceptable taxonomy ids (see module docstring)."""

    scheme: str
    table: dict[str, tuple[str, ...] | None]
    source: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    unmapped: Counter[str] = field(default_factory=Counter)

    @classmethod
    def load(cls, name_or_path: str | Path, taxonomy: Taxonomy | None = None) -> CategoryMapping:
        """A shipped scheme by name (``beavertails``) or a YAML file path; ids checked against ``taxonomy``."""
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.exists():
                raise ConfigurationError(f"mapping file {path} does not exist")
            text = path.read_text(encoding="utf-8")
        else:
            res = resources.files("proguard_rails.eval").joinpath("mappings", f"{name_or_path}.yaml")
            if not res.is_file():
                raise ConfigurationError(
                    f"no shipped mapping named {name_or_path!r}; shipped: {', '.join(builtin_mappings())}; "
                    "or pass a path to your own YAML mapping file"
                )
            text = res.read_text(encoding="utf-8")
        return cls.from_dict(yaml.safe_load(text) or {}, taxonomy=taxonomy, origin=str(name_or_path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, taxonomy: Taxonomy | None = None,
                  origin: str = "mapping") -> CategoryMapping:
        tax = taxonomy or Taxonomy.default()
        raw = data.get("categories")
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"{origin}: a mapping needs a `categories:` table (label -> taxonomy id)")
        table: dict[str, tuple[str, ...] | None] = {}
        for label, target in raw.items():
            if target is None or target == [] or (isinstance(target, str) and not target.strip()):
                table[_norm(label)] = None
                continue
            items = [target] if isinstance(target, str) else list(target)
            ids: list[str] = []
            for item in items:
                entry = tax.find(str(item))
                if entry is None:
                    nid = normalize_id(str(item))
                    raise ConfigurationError(
                        f"{origin}: label {label!r} maps to {item!r}, which is not in the taxonomy"
                        + (" (ids in a held-out or custom taxonomy?)" if nid else "")
                    )
                ids.append(entry.id)
            table[_norm(label)] = tuple(dict.fromkeys(ids))
        notes = {_norm(k): str(v) for k, v in (data.get("notes") or {}).items()}
        return cls(scheme=str(data.get("scheme", origin)), table=table, source=str(data.get("source", "")),
                   notes=notes)

    def knows(self, label: Any) -> bool:
        return self._key(label) is not None

    def _key(self, label: Any) -> str | None:
        key = _norm(label)
        if key in self.table:
            return key
        head = key.split(":", 1)[0].strip()
        if head != key and head in self.table:
            return head
        return None

    def map(self, label: Any) -> tuple[str, ...]:
        """Acceptable ids for one label; ``()`` when unknown (unlisted labels are counted in ``unmapped``)."""
        if label is None or _norm(label) == "":
            return ()
        key = self._key(label)
        if key is None:
            self.unmapped[str(label)] += 1
            return ()
        return self.table[key] or ()

    def map_many(self, labels: Iterable[Any]) -> tuple[str, ...]:
        """Union of the ids of several labels (multi-label schemes), in label order."""
        out: dict[str, None] = {}
        for label in labels:
            for cid in self.map(label):
                out.setdefault(cid, None)
        return tuple(out)


__all__ = ["CategoryMapping", "builtin_mappings"]
