"""The hierarchical safety policy: categories, subcategories and the synonym bank.

Id rule (documented in docs/taxonomy.md): every entry has a fixed id. The released policy
numbers categories ``C1..C11`` and subcategories ``C<k>S<j>`` by position. Ids never change
after creation: ``hold_out``/``remove`` leave gaps (hiding C3 renders C1, C2, C4, ...),
``rename`` keeps the id, ``add_category`` takes the next free number. The model answers with
the ids it was shown, so a parsed id always means the same entry as in the user's policy.
Call ``renumbered()`` to get contiguous ids for a policy you will train a new guard on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigurationError

# Bounded digit runs: a "C" followed by thousands of digits (model output) is no id, and int() of
# more than 4300 digits raises ValueError instead of returning.
_ID_RE = re.compile(r"^C(\d{1,9})(?:S(\d{1,9}))?$", re.IGNORECASE)


def parse_id(value: str) -> tuple[int, int | None] | None:
    """``"C8S1"`` -> ``(8, 1)``, ``"c8"`` -> ``(8, None)``, anything else -> ``None``."""
    m = _ID_RE.match(value.strip())
    if not m:
        return None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) else None)


def normalize_id(value: str) -> str | None:
    parsed = parse_id(value)
    if parsed is None:
        return None
    cat, sub = parsed
    return f"C{cat}" if sub is None else f"C{cat}S{sub}"


@dataclass(frozen=True)
class Subcategory:
    id: str
    name: str
    description: str
    synonyms: tuple[str, ...] = ()

    @property
    def parent_id(self) -> str:
        return self.id.split("S", 1)[0]

    @property
    def is_subcategory(self) -> bool:
        return True


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    description: str
    synonyms: tuple[str, ...] = ()
    subcategories: tuple[Subcategory, ...] = field(default_factory=tuple)

    @property
    def parent_id(self) -> str:
        return self.id

    @property
    def is_subcategory(self) -> bool:
        return False


Entry = Category | Subcategory


def _clean(s: Any) -> str:
    # The released YAML has stray trailing spaces in a few synonyms; they are data, not meaning.
    return str(s).strip()


class Taxonomy:
    """An immutable policy. Every editing operation returns a new Taxonomy."""

    def __init__(self, categories: Sequence[Category]) -> None:
        ids: set[str] = set()
        names: dict[str, str] = {}
        for cat in categories:
            entries: tuple[Entry, ...] = (cat, *cat.subcategories)
            for entry in entries:
                if normalize_id(entry.id) != entry.id:
                    raise ConfigurationError(f"invalid taxonomy id {entry.id!r}; expected C<k> or C<k>S<j>")
                if entry.id in ids:
                    raise ConfigurationError(f"duplicate taxonomy id {entry.id}")
                ids.add(entry.id)
                key = entry.name.casefold()
                if key in names and isinstance(entry, Category):
                    raise ConfigurationError(f"duplicate category name {entry.name!r}")
                names.setdefault(key, entry.id)
            for sub in cat.subcategories:
                if sub.parent_id != cat.id:
                    raise ConfigurationError(f"subcategory {sub.id} is not under {cat.id}")
        self._categories: tuple[Category, ...] = tuple(categories)
        self._rendered: str | None = None  # immutable, so render/fingerprint are computed once
        self._fingerprint: str | None = None
        self._by_id: dict[str, Entry] = {}
        self._by_name: dict[str, Entry] = {}
        for cat in self._categories:
            all_entries: tuple[Entry, ...] = (cat, *cat.subcategories)
            for entry in all_entries:
                self._by_id[entry.id] = entry
                self._by_name.setdefault(entry.name.casefold(), entry)

    # ------------------------------------------------------------------ loading
    @classmethod
    def default(cls) -> Taxonomy:
        """The released ProGuard policy: 11 categories, 28 subcategories."""
        return _default_taxonomy()

    @classmethod
    def from_yaml(cls, source: str | Path) -> Taxonomy:
        """Load from a YAML file path or a YAML string in the released format."""
        text: str
        if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and Path(source).exists()):
            text = Path(source).read_text(encoding="utf-8")
        else:
            text = str(source)
        data = yaml.safe_load(text)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> Taxonomy:
        """Build from the released structure (a list of categories) or ``{"categories": [...]}``.

        Each category: ``category`` (or ``name``), ``description``, ``synonymous-phrase`` (or
        ``synonyms``), ``subcategories``; optional explicit ``id``. Missing ids are assigned by
        position (C1, C2, ...; C<k>S1, C<k>S2, ...), after any explicit ones.
        """
        if isinstance(data, Mapping):
            data = data.get("categories", [])
        if not isinstance(data, Sequence):
            raise ConfigurationError("a taxonomy is a list of categories")
        cats: list[Category] = []
        used: set[int] = set()
        explicit = [normalize_id(str(c["id"])) for c in data if isinstance(c, Mapping) and c.get("id")]
        for eid in explicit:
            if eid:
                used.add(int(parse_id(eid)[0]))  # type: ignore[index]
        next_num = 1
        for raw in data:
            if not isinstance(raw, Mapping):
                raise ConfigurationError(f"taxonomy entry must be a mapping, got {type(raw).__name__}")
            name = raw.get("category", raw.get("name"))
            if not name:
                raise ConfigurationError(f"taxonomy category without a name: {dict(raw)!r}")
            if raw.get("id"):
                cid = normalize_id(str(raw["id"]))
                if cid is None or "S" in cid:
                    raise ConfigurationError(f"invalid category id {raw['id']!r}")
            else:
                while next_num in used:
                    next_num += 1
                cid = f"C{next_num}"
                used.add(next_num)
            subs: list[Subcategory] = []
            sub_used: set[int] = set()
            sub_next = 1
            for rs in raw.get("subcategories") or []:
                sname = rs.get("name", rs.get("category"))
                if not sname:
                    raise ConfigurationError(f"subcategory without a name under {name!r}")
                if rs.get("id"):
                    sid = normalize_id(str(rs["id"]))
                    if sid is None or not sid.startswith(cid + "S"):
                        raise ConfigurationError(f"invalid subcategory id {rs['id']!r} under {cid}")
                    sub_used.add(int(parse_id(sid)[1]))  # type: ignore[index,arg-type]
                else:
                    while sub_next in sub_used:
                        sub_next += 1
                    sid = f"{cid}S{sub_next}"
                    sub_used.add(sub_next)
                subs.append(
                    Subcategory(
                        id=sid,
                        name=_clean(sname),
                        description=_clean(rs.get("description", "")),
                        synonyms=tuple(_clean(s) for s in (rs.get("synonymous-phrase") or rs.get("synonyms") or [])),
                    )
                )
            cats.append(
                Category(
                    id=cid,
                    name=_clean(name),
                    description=_clean(raw.get("description", "")),
                    synonyms=tuple(_clean(s) for s in (raw.get("synonymous-phrase") or raw.get("synonyms") or [])),
                    subcategories=tuple(subs),
                )
            )
        return cls(cats)

    def to_dict(self) -> list[dict[str, Any]]:
        """The released YAML structure, with explicit ids so gaps survive a round trip."""
        return [
            {
                "id": c.id,
                "category": c.name,
                "description": c.description,
                "synonymous-phrase": list(c.synonyms),
                "subcategories": [
                    {"id": s.id, "name": s.name, "description": s.description, "synonymous-phrase": list(s.synonyms)}
                    for s in c.subcategories
                ],
            }
            for c in self._categories
        ]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    # ------------------------------------------------------------------ lookup
    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    @property
    def subcategories(self) -> tuple[Subcategory, ...]:
        return tuple(s for c in self._categories for s in c.subcategories)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def __len__(self) -> int:
        return len(self._categories)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._categories)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Taxonomy) and other._categories == self._categories

    def __hash__(self) -> int:
        return hash(self._categories)

    def __repr__(self) -> str:
        return f"Taxonomy({len(self._categories)} categories, {len(self.subcategories)} subcategories)"

    def find(self, key: str) -> Entry | None:
        """Look up by id (``C8S1``, ``c8``) or by name (case-insensitive); ``None`` if absent."""
        nid = normalize_id(key)
        if nid is not None:
            return self._by_id.get(nid)
        return self._by_name.get(key.strip().casefold())

    def get(self, key: str) -> Entry:
        entry = self.find(key)
        if entry is None:
            raise KeyError(f"{key!r} is not in this taxonomy (ids: {', '.join(self._by_id)})")
        return entry

    __getitem__ = get

    def category_of(self, key: str) -> Category:
        """The main category of an id or name (itself for a main category)."""
        entry = self.get(key)
        cat = self._by_id[entry.parent_id]
        assert isinstance(cat, Category)
        return cat

    def synonyms(self, key: str) -> list[str]:
        """The synonym bank of an entry: its five synonymous phrases (name not included)."""
        return list(self.get(key).synonyms)

    def synonym_bank(self) -> dict[str, list[str]]:
        """``id -> [name, *synonyms]`` for every entry: the targets of the out-of-policy reward."""
        return {eid: [e.name, *e.synonyms] for eid, e in self._by_id.items()}

    # ------------------------------------------------------------------ editing (immutable)
    def hold_out(self, keys: Iterable[str]) -> Taxonomy:
        """The policy without these entries (ids or names), ids of the rest unchanged.

        Holding out a category removes its subcategories too. Holding out a subcategory
        keeps its parent. Used to build out-of-policy tests and training samples.
        """
        drop = {self.get(k).id for k in keys}
        cats = []
        for c in self._categories:
            if c.id in drop:
                continue
            subs = tuple(s for s in c.subcategories if s.id not in drop)
            cats.append(replace(c, subcategories=subs))
        return Taxonomy(cats)

    remove = hold_out

    def keep_only(self, keys: Iterable[str]) -> Taxonomy:
        """The policy restricted to these entries (a subcategory keeps its parent line)."""
        keep = {self.get(k).id for k in keys}
        cats = []
        for c in self._categories:
            subs = tuple(s for s in c.subcategories if s.id in keep or c.id in keep)
            if c.id in keep or subs:
                cats.append(replace(c, subcategories=subs))
        return Taxonomy(cats)

    def rename(self, key: str, name: str, description: str | None = None) -> Taxonomy:
        target = self.get(key).id
        cats = []
        for c in self._categories:
            if c.id == target:
                c = replace(c, name=name, description=description if description is not None else c.description)
            else:
                c = replace(
                    c,
                    subcategories=tuple(
                        replace(s, name=name, description=description if description is not None else s.description)
                        if s.id == target
                        else s
                        for s in c.subcategories
                    ),
                )
            cats.append(c)
        return Taxonomy(cats)

    def add_category(
        self,
        name: str,
        description: str,
        *,
        synonyms: Sequence[str] = (),
        subcategories: Sequence[Mapping[str, Any]] = (),
    ) -> Taxonomy:
        """Append a category with the next free number; subcategories as ``{name, description, synonyms}``."""
        nums = [parse_id(c.id)[0] for c in self._categories]  # type: ignore[index]
        cid = f"C{max(nums, default=0) + 1}"
        subs = tuple(
            Subcategory(
                id=f"{cid}S{j}",
                name=_clean(s["name"]),
                description=_clean(s.get("description", "")),
                synonyms=tuple(_clean(x) for x in s.get("synonyms", ())),
            )
            for j, s in enumerate(subcategories, start=1)
        )
        return Taxonomy(
            [*self._categories, Category(cid, _clean(name), _clean(description), tuple(synonyms), subs)]
        )

    def add_subcategory(
        self, parent: str, name: str, description: str, *, synonyms: Sequence[str] = ()
    ) -> Taxonomy:
        pid = self.category_of(parent).id
        cats = []
        for c in self._categories:
            if c.id == pid:
                nums = [parse_id(s.id)[1] or 0 for s in c.subcategories]  # type: ignore[index]
                sid = f"{pid}S{max(nums, default=0) + 1}"
                c = replace(c, subcategories=(*c.subcategories, Subcategory(sid, name, description, tuple(synonyms))))
            cats.append(c)
        return Taxonomy(cats)

    def renumbered(self) -> Taxonomy:
        """Contiguous ids by position (C1.., C<k>S1..). Use for a fresh policy, not a held-out one."""
        return Taxonomy.from_dict(
            [{k: v for k, v in c.items() if k != "id"} | {"subcategories": [
                {k: v for k, v in s.items() if k != "id"} for s in c["subcategories"]
            ]} for c in self.to_dict()]
        )

    # ------------------------------------------------------------------ rendering
    def render(self) -> str:
        """The category block exactly as the released prompts show it (leading and trailing newline)."""
        if self._rendered is not None:
            return self._rendered
        lines = [""]
        for c in self._categories:
            lines.append(f"{c.id}: {c.name} — {c.description}")
            lines.extend(f"  {s.id}: {s.name} — {s.description}" for s in c.subcategories)
        self._rendered = "\n".join(lines) + "\n"
        return self._rendered

    @property
    def fingerprint(self) -> str:
        """Stable hash of everything a judge could depend on (rendering and synonyms)."""
        if self._fingerprint is None:
            h = hashlib.sha256(self.render().encode())
            for eid, bank in self.synonym_bank().items():
                h.update(f"{eid}|{'|'.join(bank)}\n".encode())
            self._fingerprint = h.hexdigest()[:16]
        return self._fingerprint


_BLOCK_LINE_RE = re.compile(r"^\s*(C\d+(?:S\d+)?): (.*?) — (.*)$")


@lru_cache(maxsize=1)
def _default_taxonomy() -> Taxonomy:
    """The released YAML (names, descriptions, synonym bank), with names and descriptions
    taken from the released prompts' category block where the two differ: the checkpoints
    were trained on the prompt text (the YAML has a typographic apostrophe in C3S2 where the
    prompt has an ASCII one), so the default policy must render byte-identical to it."""
    pkg = resources.files("proguard_rails")
    tax = Taxonomy.from_yaml(pkg.joinpath("data/proguard_taxonomy.yaml").read_text(encoding="utf-8"))
    import json

    block = json.loads(pkg.joinpath("data/proguard_prompts.json").read_text(encoding="utf-8"))[
        "UNSAFE_CONTENT_CATEGORIES"
    ]
    shown = {m.group(1): (m.group(2), m.group(3)) for m in map(_BLOCK_LINE_RE.match, block.splitlines()) if m}
    cats = []
    for c in tax.categories:
        name, desc = shown.get(c.id, (c.name, c.description))
        subs = tuple(
            replace(s, name=shown.get(s.id, (s.name,))[0], description=shown.get(s.id, (s.name, s.description))[1])
            for s in c.subcategories
        )
        cats.append(replace(c, name=name, description=desc, subcategories=subs))
    return Taxonomy(cats)


__all__ = ["Category", "Entry", "Subcategory", "Taxonomy", "normalize_id", "parse_id"]
