"""Dataset adapters: files the user already has -> ``EvalSample`` lists.

The adapters only read; nothing is downloaded and no benchmark data ships with the
project. Each adapter documents the columns it expects (``ADAPTERS[name].columns``, also
in docs/evaluation.md). Rows an adapter cannot use are skipped and counted with a reason
(``Dataset.skipped``) instead of failing the whole file.

Formats read for every adapter: ``.jsonl``, ``.json`` (a list of objects), ``.csv``,
``.tsv`` and ``.parquet`` (needs pyarrow: ``pip install 'proguard-rails[eval]'``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard_rails._io import iter_jsonl
from proguard_rails.errors import ConfigurationError, MissingDependencyError
from proguard_rails.taxonomy import Taxonomy

from .mapping import CategoryMapping
from .samples import EvalSample, Label, parse_label

Row = Mapping[str, Any]


# ---------------------------------------------------------------------------- reading
def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL / JSON / CSV / TSV / parquet file as dicts (format from the suffix)."""
    p = Path(path)
    if not p.exists():
        raise ConfigurationError(f"dataset file {p} does not exist")
    suffix = "".join(s for s in p.suffixes[-2:] if s != ".gz").lower() or p.suffix.lower()
    if suffix.endswith(".jsonl") or suffix.endswith(".ndjson"):
        for _lineno, obj in iter_jsonl(p):
            yield obj if isinstance(obj, dict) else {"value": obj}
    elif suffix.endswith(".json"):
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        for obj in data:
            yield obj if isinstance(obj, dict) else {"value": obj}
    elif suffix.endswith(".csv") or suffix.endswith(".tsv"):
        with p.open(encoding="utf-8-sig", newline="") as fh:
            yield from csv.DictReader(fh, delimiter="\t" if suffix.endswith(".tsv") else ",")
    elif suffix.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - pyarrow is in the eval extra
            raise MissingDependencyError("pyarrow", "eval", "reading parquet files") from exc
        table = pq.read_table(p)
        for batch in table.to_batches():
            yield from batch.to_pylist()
    elif suffix.endswith(".txt"):
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield {"value": line.rstrip("\n")}
    else:
        raise ConfigurationError(f"{p}: unknown file type {p.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet")


def _get(row: Row, *names: str) -> Any:
    """First present, non-empty value among column names (case-insensitive fallback)."""
    for name in names:
        if name in row and row[name] is not None and row[name] != "":
            return row[name]
    lower = {str(k).casefold(): k for k in row}
    for name in names:
        key = lower.get(name.casefold())
        if key is not None and row[key] is not None and row[key] != "":
            return row[key]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    return str(value)


def _list(value: Any, sep: str = "|") -> list[Any]:
    """A list column: a real list, a JSON list in a string, or ``sep``-separated text."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        return list(value.tolist())
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return parsed
        except json.JSONDecodeError:
            pass
    return [t.strip() for t in text.split(sep) if t.strip()] if sep in text else [text]


def _truthy(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if value != value:
            return None
        return bool(value)
    text = str(value).strip().casefold()
    if text in ("1", "true", "yes", "y", "t"):
        return True
    if text in ("0", "false", "no", "n", "f"):
        return False
    raise ValueError(f"cannot read {value!r} as a boolean flag")


# ---------------------------------------------------------------------------- model
@dataclass
class Dataset:
    """Samples from one file plus what the adapter could not use."""

    name: str
    format: str
    path: str
    samples: list[EvalSample]
    skipped: Counter[str] = field(default_factory=Counter)
    unmapped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def stats(self) -> dict[str, Any]:
        mods = Counter(str(s.modality) for s in self.samples)
        return {
            "name": self.name,
            "format": self.format,
            "path": self.path,
            "n": len(self.samples),
            "modalities": dict(mods),
            "request_labels": dict(Counter(s.request_label or "unlabelled" for s in self.samples)),
            "response_labels": dict(Counter(s.response_label or "unlabelled" for s in self.samples)),
            "with_category": sum(1 for s in self.samples if s.categories),
            "skipped": dict(self.skipped),
            "unmapped_categories": dict(self.unmapped),
        }


@dataclass(frozen=True)
class AdapterContext:
    name: str
    base_dir: Path
    taxonomy: Taxonomy
    mapping: CategoryMapping | None
    options: Mapping[str, Any]


AdapterFn = Callable[[Row, int, AdapterContext], EvalSample | None]


@dataclass(frozen=True)
class Adapter:
    name: str
    fn: AdapterFn
    columns: str
    default_mapping: str | None = None
    description: str = ""


class SkipRow(Exception):
    """Raised by an adapter for a row it cannot use; the message is the counted reason."""


def _resolve_images(values: Sequence[Any], ctx: AdapterContext) -> tuple[str, ...]:
    root = Path(ctx.options.get("image_root") or ctx.base_dir)
    out: list[str] = []
    for v in values:
        text = _text(v).strip()
        if not text:
            continue
        if text.startswith("data:") or "://" in text[:12]:
            out.append(text)
            continue
        if _looks_base64(text) and not (len(text) < 1024 and ((root / text).exists() or Path(text).exists())):
            out.append(text)  # inline base64 image data (the training schema stores bytes that way in JSON)
            continue
        p = Path(text)
        out.append(str(p if p.is_absolute() else root / p))
    return tuple(out)


def _looks_base64(text: str) -> bool:
    return len(text) >= 64 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", text[:4096]) is not None


def _taxonomy_categories(values: Sequence[Any], ctx: AdapterContext) -> tuple[str, ...]:
    """Category values that are taxonomy ids or names, or labels through the mapping file."""
    out: dict[str, None] = {}
    for v in values:
        text = _text(v).strip()
        if not text or text.casefold() in ("none", "null", "nan", "safe", "n/a"):
            continue
        if ctx.mapping is not None and ctx.mapping.knows(text):
            ids = ctx.mapping.map(text)
        else:
            entry = ctx.taxonomy.find(text)
            if entry is None and ctx.mapping is not None:
                ids = ctx.mapping.map(text)  # counted as unmapped
            elif entry is None:
                raise SkipRow(f"category {text!r} is not a taxonomy id or name (pass a mapping file)")
            else:
                ids = (entry.id,)
        for cid in ids:
            out.setdefault(cid, None)
    return tuple(out)


def _label_or_skip(value: Any, what: str) -> Label | None:
    try:
        return parse_label(value)
    except ValueError as exc:
        raise SkipRow(f"bad {what}: {exc}") from exc


# ---------------------------------------------------------------------------- adapters
def _get_text(row: Row, *names: str) -> Any:
    """Like ``_get`` but only string values: in some schemas ``request`` is a 0/1 label column."""
    for name in names:
        v = _get(row, name)
        if isinstance(v, str):
            return v
    return None


def _generic(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    request = _text(_get_text(row, "request", "prompt", "user", "question", "query", "input", "text"))
    response = _get_text(row, "response", "answer", "completion", "output", "agent")
    response_text = _text(response) if response is not None else None
    images = _resolve_images(_list(_get(row, "images", "image", "image_path", "image_file", "img")), ctx)
    if not request.strip() and not (response_text or "").strip() and not images:
        raise SkipRow("no request, response or image")
    req_label = _label_or_skip(_get(row, "request_label", "prompt_label", "prompt_harm_label"), "request_label")
    resp_label = _label_or_skip(_get(row, "response_label", "response_harm_label"), "response_label")
    has_response = bool(response_text and response_text.strip())
    if not has_response:
        # No agent turn to judge: a response label here is a schema default (the training
        # schema stores "safe" for text without a response), not something to measure.
        resp_label = None
    overall = _label_or_skip(_get(row, "label", "labels", "safety_label"), "label")
    if overall is not None:
        # `label` labels the last turn present: the response if there is one, else the request.
        if response_text and response_text.strip():
            resp_label = resp_label or overall
        else:
            req_label = req_label or overall
    cats_raw = _list(_get(row, "category", "categories", "category_id", "subcategory"))
    if not cats_raw and _get(row, "target_name"):
        # a training-schema hold-out row: its category is named, not given as an id
        cats_raw = [_get(row, "target_name")]
    cats = _taxonomy_categories(cats_raw, ctx)
    return EvalSample(
        id=_text(_get(row, "id", "sample_id", "uid")) or str(index),
        request=request,
        response=response_text,
        images=images,
        request_label=req_label,
        response_label=resp_label,
        categories=cats if (req_label == "unsafe" or resp_label == "unsafe") else (),
        source_category="|".join(_text(c) for c in cats_raw) or None,
        dataset=ctx.name,
        metadata={"source": _text(_get(row, "source"))} if _get(row, "source") else {},
    )


def _xstest(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    prompt = _text(_get(row, "prompt"))
    if not prompt.strip():
        raise SkipRow("empty prompt")
    label = _label_or_skip(_get(row, "label"), "label")
    if label is None:
        raise SkipRow("no label")
    kind = _text(_get(row, "type"))
    response = _get(row, "response", "completion")
    resp_label = _label_or_skip(_get(row, "response_label"), "response_label")
    cats = ctx.mapping.map(kind) if (ctx.mapping and label == "unsafe" and kind) else ()
    return EvalSample(
        id=_text(_get(row, "id", "id_v2")) or str(index),
        request=prompt,
        response=_text(response) if response is not None else None,
        request_label=label,
        response_label=resp_label,
        categories=cats,
        source_category=kind or None,
        dataset=ctx.name,
        metadata={"type": kind},
    )


OPENAI_FLAGS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")


def _openai_moderation(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    prompt = _text(_get(row, "prompt", "text"))
    if not prompt.strip():
        raise SkipRow("empty prompt")
    present: dict[str, bool] = {}
    for flag in OPENAI_FLAGS:
        if flag in row and row[flag] is not None and row[flag] != "":
            try:
                present[flag] = bool(_truthy(row[flag]))
            except ValueError as exc:
                raise SkipRow(f"flag {flag}: {exc}") from exc
    flagged = [f for f in OPENAI_FLAGS if present.get(f)]
    absent_mode = ctx.options.get("absent_flags", "unknown")
    if flagged:
        label: Label | None = "unsafe"
    elif len(present) == len(OPENAI_FLAGS) or absent_mode == "safe":
        label = "safe"
    else:
        # Absent flags are unknown: with none set and some missing, the row's label is unknown.
        raise SkipRow("no flag set and some flags absent (label unknown; absent_flags='safe' reads them as 0)")
    cats = ctx.mapping.map_many(flagged) if ctx.mapping else ()
    return EvalSample(
        id=_text(_get(row, "id")) or str(index),
        request=prompt,
        request_label=label,
        categories=cats,
        source_category=",".join(flagged) or None,
        dataset=ctx.name,
        metadata={"flags": present},
    )


def _simplesafetytests(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    prompt = _text(_get(row, "prompt", "prompts_final", "prompts_final_english"))
    if not prompt.strip():
        raise SkipRow("empty prompt")
    area = _text(_get(row, "harm_area", "harm area"))
    return EvalSample(
        id=_text(_get(row, "id")) or str(index),
        request=prompt,
        request_label="unsafe",
        categories=ctx.mapping.map(area) if (ctx.mapping and area) else (),
        source_category=area or None,
        dataset=ctx.name,
        metadata={"category": _text(_get(row, "category"))},
    )


def _harmbench(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    behavior = _text(_get(row, "Behavior", "behavior", "value"))
    if not behavior.strip():
        raise SkipRow("empty behavior")
    context = _text(_get(row, "ContextString", "context_string", "context"))
    text = f"{context}\n\n---\n\n{behavior}" if (context.strip() and ctx.options.get("include_context", True)) else behavior
    semantic = _text(_get(row, "SemanticCategory", "semantic_category", "category"))
    return EvalSample(
        id=_text(_get(row, "BehaviorID", "behavior_id", "id")) or str(index),
        request=text,
        request_label="unsafe",
        categories=ctx.mapping.map(semantic) if (ctx.mapping and semantic) else (),
        source_category=semantic or None,
        dataset=ctx.name,
        metadata={"functional_category": _text(_get(row, "FunctionalCategory", "functional_category"))},
    )


def _beavertails(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    prompt = _text(_get(row, "prompt", "question"))
    response = _text(_get(row, "response", "answer"))
    if not response.strip():
        raise SkipRow("empty response")
    try:
        is_safe = _truthy(_get(row, "is_safe"))
    except ValueError as exc:
        raise SkipRow(f"is_safe: {exc}") from exc
    if is_safe is None:
        raise SkipRow("no is_safe value")
    flags_raw = _get(row, "category")
    flags: dict[str, bool] = {}
    if isinstance(flags_raw, str):
        try:
            flags_raw = json.loads(flags_raw)
        except json.JSONDecodeError:
            flags_raw = {flags_raw: True}
    if isinstance(flags_raw, Mapping):
        flags = {str(k): bool(_truthy(v)) for k, v in flags_raw.items() if v is not None}
    else:  # flattened columns: category.<name> or category/<name>
        for k, v in row.items():
            ks = str(k)
            if ks.startswith(("category.", "category/")) and v not in (None, ""):
                flags[ks.split(".", 1)[-1].split("/", 1)[-1]] = bool(_truthy(v))
    on = [k for k, v in flags.items() if v]
    images = _resolve_images(_list(_get(row, "image", "image_path", "images")), ctx)
    return EvalSample(
        id=_text(_get(row, "id")) or str(index),
        request=prompt,
        response=response,
        images=images,
        request_label=None,
        response_label="safe" if is_safe else "unsafe",
        categories=(ctx.mapping.map_many(on) if (ctx.mapping and not is_safe) else ()),
        source_category=",".join(on) or None,
        dataset=ctx.name,
    )


def _llavaguard(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    images = _resolve_images(_list(_get(row, "image", "image_path", "img", "path", "images")), ctx)
    if not images:
        raise SkipRow("no image path")
    rating = _text(_get(row, "rating", "decision", "label"))
    label = _label_or_skip(rating, "rating")
    if label is None:
        raise SkipRow("no rating")
    category = _text(_get(row, "category"))
    prompt = _text(_get(row, "prompt", "text")) if ctx.options.get("with_text") else ""
    return EvalSample(
        id=_text(_get(row, "id")) or Path(images[0]).name or str(index),
        request=prompt,
        images=images,
        request_label=label,
        categories=ctx.mapping.map(category) if (ctx.mapping and category and label == "unsafe") else (),
        source_category=category or None,
        dataset=ctx.name,
    )


def _lite_dump(row: Row, index: int, ctx: AdapterContext) -> EvalSample | None:
    wanted = ctx.options.get("split", "dev")
    if wanted and row.get("split") is not None and row.get("split") != wanted:
        raise SkipRow(f"split {row.get('split')!r} (not {wanted!r})")
    user = _text(row.get("user"))
    agent = row.get("agent")
    agent_text = _text(agent) if agent is not None else None
    if not user.strip() and not (agent_text or "").strip():
        raise SkipRow("no user or agent text")
    req_label = _label_or_skip(row.get("request"), "request")
    resp_label = _label_or_skip(row.get("response"), "response") if (agent_text or "").strip() else None
    cat = _text(row.get("category"))
    unsafe = req_label == "unsafe" or resp_label == "unsafe"
    # "oop:<slug>" marks a risk the taxonomy has no entry for: its category is unknown here
    cats = (ctx.taxonomy.get(cat).id,) if (unsafe and cat and ctx.taxonomy.find(cat) is not None) else ()
    key = f"{row.get('group') or ''}|{user}|{agent_text or ''}"
    return EvalSample(
        id=_text(row.get("id")) or f"{index}-{hashlib.sha256(key.encode()).hexdigest()[:10]}",
        request=user,
        response=agent_text,
        request_label=req_label,
        response_label=resp_label,
        categories=cats,
        source_category=cat or None,
        dataset=ctx.name,
        metadata={"source": _text(row.get("source"))},
    )


ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in [
        Adapter(
            "generic", _generic,
            columns=(
                "id (optional); request|prompt; response (optional); label (labels the last turn present) "
                "and/or request_label, response_label (safe/unsafe, harmful/unharmful, 0/1); category "
                "(taxonomy id or name, a list, or labels through --mapping); image|image_path|images "
                "(paths relative to the file, or --image-root)"
            ),
            description="Any JSONL/CSV/parquet with the project's sample columns (the dev set, your data).",
        ),
        Adapter(
            "lite", _lite_dump,
            columns=(
                "user; agent (optional); request, response (1 unsafe / 0 safe / null); category (taxonomy id, "
                "or oop:<slug> for risks outside the taxonomy); source; group; split (rows of --split, default dev)"
            ),
            description="The lite judge's example dump: python -m training.run lite build --dump FILE (split: calib, fold1, fold2, fold3).",
        ),
        Adapter(
            "xstest", _xstest, default_mapping="xstest",
            columns="prompt; type; label (safe/unsafe); optional id, response + response_label",
            description="XSTest-style exaggerated-safety prompts (request classification).",
        ),
        Adapter(
            "openai_moderation", _openai_moderation, default_mapping="openai_moderation",
            columns="prompt; flags S, H, V, HR, SH, S3, H2, V2 as 0/1 (absent = unknown)",
            description="OpenAI-moderation-style JSONL; any flag 1 -> unsafe, all 8 present and 0 -> safe.",
        ),
        Adapter(
            "simplesafetytests", _simplesafetytests, default_mapping="simplesafetytests",
            columns="prompt|prompts_final; harm_area; optional id, category",
            description="SimpleSafetyTests-style CSV: every prompt is unsafe.",
        ),
        Adapter(
            "harmbench", _harmbench, default_mapping="harmbench",
            columns="Behavior; SemanticCategory; optional BehaviorID, ContextString, FunctionalCategory",
            description="HarmBench behaviour lists: every behaviour is an unsafe request.",
        ),
        Adapter(
            "beavertails", _beavertails, default_mapping="beavertails",
            columns="prompt; response; is_safe (bool); category (dict of 14 flags, JSON in CSV); optional image",
            description="BeaverTails-style QA pairs: the response is labelled, the request is not.",
        ),
        Adapter(
            "llavaguard", _llavaguard, default_mapping="llavaguard",
            columns="image|image_path; rating (Safe/Unsafe); category (O1..O9, NA); optional id",
            description="LlavaGuard-style image rows: image-only requests.",
        ),
    ]
}


def load_dataset(
    path: str | Path,
    format: str = "generic",
    *,
    name: str | None = None,
    mapping: str | Path | CategoryMapping | None = None,
    taxonomy: Taxonomy | None = None,
    limit: int | None = None,
    **options: Any,
) -> Dataset:
    """Read ``path`` with the adapter ``format``.

    ``mapping``: a shipped scheme name, a YAML path or a ``CategoryMapping``; defaults to the
    adapter's shipped scheme (the generic adapter takes taxonomy ids or names directly).
    ``options``: adapter options (``image_root``, ``absent_flags``, ``include_context``, ``with_text``).
    """
    if format not in ADAPTERS:
        raise ConfigurationError(f"unknown dataset format {format!r}; one of: {', '.join(ADAPTERS)}")
    adapter = ADAPTERS[format]
    tax = taxonomy or Taxonomy.default()
    if isinstance(mapping, CategoryMapping):
        cmap: CategoryMapping | None = mapping
    elif mapping is not None:
        cmap = CategoryMapping.load(mapping, tax)
    elif adapter.default_mapping:
        cmap = CategoryMapping.load(adapter.default_mapping, tax)
    else:
        cmap = None
    p = Path(path)
    ds_name = name or p.stem
    ctx = AdapterContext(ds_name, p.parent, tax, cmap, options)
    samples: list[EvalSample] = []
    skipped: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for index, row in enumerate(read_rows(p)):
        if limit is not None and len(samples) >= limit:
            break
        try:
            sample = adapter.fn(row, index, ctx)
        except SkipRow as exc:
            skipped[str(exc)] += 1
            continue
        if sample is None:
            continue
        seen[sample.id] += 1
        if seen[sample.id] > 1:  # ids key the cache and the predictions: keep them unique
            from dataclasses import replace

            sample = replace(sample, id=f"{sample.id}#{seen[sample.id]}")
        samples.append(sample)
    if not samples:
        detail = "; ".join(f"{k} ({v})" for k, v in skipped.most_common(3))
        raise ConfigurationError(
            f"{p}: no usable rows for format {format!r}" + (f": {detail}" if detail else "")
            + f". Expected columns: {adapter.columns}"
        )
    return Dataset(ds_name, format, str(p), samples, skipped, dict(cmap.unmapped) if cmap else {})


__all__ = ["ADAPTERS", "OPENAI_FLAGS", "Adapter", "Dataset", "SkipRow", "load_dataset", "read_rows"]
