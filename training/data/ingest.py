"""Ingesters: JSONL, CSV/TSV, parquet, Hugging Face datasets saved to disk, image folders.

All of them go through one record -> :class:`GuardSample` conversion driven by a
:class:`~training.data.mapping.LabelMapping`, so the label rules are identical whatever
the file format. Records that cannot be used raise with the file and row (``errors=
"raise"``, the default) or are skipped and counted (``errors="skip"``): the returned
:class:`Ingested` list carries ``skipped`` reasons and ``unmapped`` category values.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from proguard_rails._io import iter_jsonl as _iter_jsonl_lines
from proguard_rails.errors import ConfigurationError, MissingDependencyError
from proguard_rails.taxonomy import Taxonomy

from .mapping import LabelMapping, SkipRecord
from .schema import GuardSample

Errors = Literal["raise", "skip"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
SIDECAR_NAMES = ("labels.jsonl", "labels.csv", "metadata.jsonl", "metadata.csv", "labels.tsv")


class Ingested(list[GuardSample]):
    """A list of samples plus what was left out and why."""

    def __init__(self, items: Iterable[GuardSample] = (), *, skipped: Counter[str] | None = None,
                 unmapped: Counter[str] | None = None) -> None:
        super().__init__(items)
        self.skipped: Counter[str] = skipped or Counter()
        self.unmapped: Counter[str] = unmapped or Counter()


# ---------------------------------------------------------------------------- record conversion
def _pil_to_png(img: Any) -> bytes:
    buf = io.BytesIO()
    (img if img.mode in ("RGB", "RGBA", "L") else img.convert("RGB")).save(buf, format="PNG")
    return buf.getvalue()


def _images(value: Any, mapping: LabelMapping, base: Path | None) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, float) and value != value:
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):  # a JSON list stored in a CSV cell
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = [text]
        else:
            value = [text]
    if isinstance(value, (bytes, bytearray, dict)) or hasattr(value, "save"):
        value = [value]
    out: list[Any] = []
    for item in value:
        if item is None:
            continue
        if hasattr(item, "save") and hasattr(item, "mode"):  # PIL image (HF Image feature)
            out.append(_pil_to_png(item))
        elif isinstance(item, (bytes, bytearray)):
            out.append(bytes(item))
        elif isinstance(item, dict):
            if isinstance(item.get("b64"), str):  # written by training.data.write_samples
                out.append(base64.b64decode(item["b64"]))
            elif item.get("bytes"):
                out.append(bytes(item["bytes"]))
            elif item.get("path"):
                out.append(mapping.resolve_image(str(item["path"]), base))
        else:
            out.append(mapping.resolve_image(str(item), base))
    return out


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, list):  # chat-style lists: join the text parts
        parts = []
        for m in value:
            if isinstance(m, Mapping):
                c = m.get("content", m.get("text", ""))
                parts.append(c if isinstance(c, str) else "")
            else:
                parts.append(str(m))
        return "\n".join(p for p in parts if p)
    return str(value)


def _empty(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return True
    if isinstance(value, (list, tuple)):
        return all(_empty(v) for v in value)
    return str(value).strip().casefold() in ("", "none", "null", "nan", "n/a", "na", "-")


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [str(v) for v in json.loads(text)]
        return [v.strip() for v in text.split("|") if v.strip()] if text else []
    return [str(v) for v in value]


def record_to_sample(record: Mapping[str, Any], mapping: LabelMapping, *, base: Path | None = None,
                     source: str = "") -> GuardSample:
    """One record -> one sample (raises ``ValueError`` or ``SkipRecord``)."""
    request = _text(mapping.get(record, "request")) or ""
    response = _text(mapping.get(record, "response"))
    if response is not None and not response.strip():
        response = None
    images = _images(mapping.get(record, "images"), mapping, base)
    req_label = mapping.label(mapping.get(record, "request_label"), "request label")
    resp_label = mapping.label(mapping.get(record, "response_label"), "response label")
    raw_category = mapping.get(record, "category")
    implied, category = mapping.category(raw_category)
    if req_label is None and resp_label is None:
        if implied is None and mapping.label_from_category and "category" in mapping.columns and _empty(raw_category):
            implied = "safe"  # an explicitly mapped category column left empty: nothing harmful was flagged
        if not mapping.label_from_category or implied is None:
            raise ValueError("record has no safety label: map a label column, set one for the whole source under "
                             "`constants:` (e.g. request_label: unsafe), or map a category column whose codes mean "
                             "safe/unsafe (label_from_category: true)")
        req_label = implied
        if response is not None:
            # The category labels the request; map label columns explicitly for response moderation data.
            resp_label = "safe"
    if req_label is None:
        # Response-only labels (output moderation sets): the request itself is not judged unsafe.
        req_label = "safe"
    unsafe = req_label == "unsafe" or resp_label == "unsafe"
    metadata: dict[str, Any] = {}
    if category is not None and not unsafe:
        metadata["ignored_category"] = category  # a category on a safe sample carries no target
        category = None
    if raw_category is not None and not isinstance(raw_category, (list, tuple, dict)):
        metadata["source_category"] = str(raw_category)
    rid = mapping.get(record, "id")
    return GuardSample(
        id=str(rid) if rid not in (None, "") else "",
        request=request,
        response=response,
        images=images,
        request_label=req_label,
        response_label=resp_label,
        category=category,
        source=str(mapping.get(record, "source") or mapping.source or source),
        held_out=_list(mapping.get(record, "held_out")),
        target_name=_text(mapping.get(record, "target_name")),
        synonyms=_list(mapping.get(record, "synonyms")),
        metadata=metadata,
    )


def records_to_samples(records: Iterable[Mapping[str, Any]], mapping: LabelMapping | None = None, *,
                       base: Path | None = None, source: str = "", errors: Errors = "raise",
                       where: str = "record") -> Ingested:
    mapping = mapping or LabelMapping()
    out = Ingested()
    before = Counter(mapping.unmapped)  # a mapping object may be reused across files
    for i, record in enumerate(records):
        try:
            out.append(record_to_sample(record, mapping, base=base, source=source))
        except SkipRecord as exc:
            out.skipped[str(exc)] += 1
        except (ValueError, FileNotFoundError) as exc:
            if errors == "raise":
                raise ValueError(f"{where} {i}: {exc}") from exc
            out.skipped[type(exc).__name__ + ": " + str(exc).splitlines()[0][:120]] += 1
    out.unmapped.update(mapping.unmapped - before)
    return out


# ---------------------------------------------------------------------------- file readers
def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    p = Path(path)
    if p.suffix.lower() == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = next((v for v in data.values() if isinstance(v, list)), [data])
        yield from (d for d in data if isinstance(d, dict))
        return
    for lineno, obj in _iter_jsonl_lines(p):
        if not isinstance(obj, dict):
            raise ValueError(f"{p}:{lineno}: expected a JSON object per line")
        yield obj


def iter_csv(path: str | Path) -> Iterator[dict[str, Any]]:
    p = Path(path)
    with p.open(encoding="utf-8-sig", newline="") as fh:
        yield from csv.DictReader(fh, delimiter="\t" if p.suffix.lower() == ".tsv" else ",")


def iter_parquet(path: str | Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is in the train extra
        raise MissingDependencyError("pyarrow", "train", "reading parquet files") from exc
    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def iter_hf_disk(path: str | Path, split: str | None = None) -> Iterator[dict[str, Any]]:
    try:
        from datasets import DatasetDict, load_from_disk
    except ImportError as exc:  # pragma: no cover
        raise MissingDependencyError("datasets", "train", "reading Hugging Face datasets") from exc
    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if split is None:
            if len(ds) == 1:
                split = next(iter(ds))
            elif "train" in ds:
                split = "train"
            else:
                raise ConfigurationError(f"{path} holds splits {list(ds)}; pass split=...")
        if split not in ds:
            raise ConfigurationError(f"{path} has no split {split!r} (splits: {list(ds)})")
        ds = ds[split]
    yield from ds


def _is_hf_dir(p: Path) -> bool:
    return p.is_dir() and any((p / n).exists() for n in ("dataset_info.json", "state.json", "dataset_dict.json"))


def read_jsonl(path: str | Path, mapping: LabelMapping | None = None, *, errors: Errors = "raise") -> Ingested:
    p = Path(path)
    return records_to_samples(iter_jsonl(p), mapping, base=p.parent, source=p.stem, errors=errors, where=f"{p} row")


def read_csv(path: str | Path, mapping: LabelMapping | None = None, *, errors: Errors = "raise") -> Ingested:
    p = Path(path)
    return records_to_samples(iter_csv(p), mapping, base=p.parent, source=p.stem, errors=errors, where=f"{p} row")


def read_parquet(path: str | Path, mapping: LabelMapping | None = None, *, errors: Errors = "raise") -> Ingested:
    p = Path(path)
    return records_to_samples(iter_parquet(p), mapping, base=p.parent, source=p.stem, errors=errors,
                              where=f"{p} row")


def read_hf_disk(path: str | Path, mapping: LabelMapping | None = None, *, split: str | None = None,
                 errors: Errors = "raise") -> Ingested:
    """A dataset saved with ``Dataset.save_to_disk`` (Image features arrive as PIL images)."""
    p = Path(path)
    return records_to_samples(iter_hf_disk(p, split), mapping, base=p, source=p.name, errors=errors,
                              where=f"{p} row")


def read_image_folder(root: str | Path, mapping: LabelMapping | None = None, *, sidecar: str | Path | None = None,
                      errors: Errors = "raise") -> Ingested:
    """Images labelled by a sidecar file, or else by their subfolder.

    * Sidecar (``labels.jsonl``/``labels.csv``/``metadata.jsonl`` in ``root``, or ``sidecar=``):
      one record per image with a file column (``file``/``file_name``/``image``/``path``) and
      label and category columns, read with the mapping like any record (text columns there
      make text-image samples).
    * Subfolders: ``root/<name>/*.png``. ``<name>`` is a label word (``safe``, ``unsafe``, or
      spellings added in the mapping's ``labels:``) or a category code, read with the mapping's
      category scheme (a key of its ``categories:`` table; or, without a table or with
      ``category_scheme: both``, a canonical taxonomy id or entry name); a category folder means
      unsafe.
    """
    mapping = mapping or LabelMapping()
    base = Path(root)
    if not base.is_dir():
        raise ConfigurationError(f"image folder {base} does not exist")
    side = Path(sidecar) if sidecar else next((base / n for n in SIDECAR_NAMES if (base / n).exists()), None)
    if side is not None:
        rows = list(iter_csv(side) if side.suffix.lower() in (".csv", ".tsv") else iter_jsonl(side))
        return records_to_samples(rows, mapping, base=base, source=base.name, errors=errors, where=f"{side} row")
    records: list[dict[str, Any]] = []
    for sub in sorted(d for d in base.iterdir() if d.is_dir()):
        try:
            label = mapping.label(sub.name, "folder name")
        except ValueError:
            label = None
        for f in sorted(sub.rglob("*")):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                continue
            rec: dict[str, Any] = {"images": str(f), "id": f"{sub.name}/{f.relative_to(sub)}"}
            if label is not None:
                rec["request_label"] = label
            else:
                rec["category"] = sub.name
            records.append(rec)
    if not records:
        raise ConfigurationError(f"no images found under {base} (expected subfolders per label/category, or a "
                                 f"sidecar file named one of {SIDECAR_NAMES})")
    # The folder layout defines the fields, so ignore any column names the mapping sets.
    folder_mapping = LabelMapping(
        source=mapping.source or base.name, safe_values=mapping.safe_values, unsafe_values=mapping.unsafe_values,
        categories=mapping.categories, unknown_category=mapping.unknown_category, taxonomy=mapping.taxonomy,
        category_scheme=mapping.category_scheme, category_precedence=mapping.category_precedence,
    )
    out = records_to_samples(records, folder_mapping, base=base, errors=errors, where=f"{base} image")
    mapping.unmapped.update(out.unmapped)
    return out


def load_samples(path: str | Path, mapping: LabelMapping | str | Path | None = None, *,
                 fmt: Literal["auto", "jsonl", "csv", "parquet", "hf", "images"] = "auto",
                 taxonomy: Taxonomy | None = None, split: str | None = None,
                 errors: Errors = "raise") -> Ingested:
    """Read any supported source into samples; the format is detected from the path by default."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigurationError(f"data source {p} does not exist")
    if mapping is not None and not isinstance(mapping, LabelMapping):
        mapping = LabelMapping.load(mapping, taxonomy=taxonomy)
    elif mapping is None and taxonomy is not None:
        mapping = LabelMapping(taxonomy=taxonomy)
    if fmt == "auto":
        if _is_hf_dir(p):
            fmt = "hf"
        elif p.is_dir():
            fmt = "images"
        else:
            suffix = p.suffix.lower()
            fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
                   ".parquet": "parquet"}.get(suffix)  # type: ignore[assignment]
            if fmt is None:
                raise ConfigurationError(f"{p}: cannot tell the format from {suffix!r}; pass fmt= (jsonl, csv, "
                                         "parquet, hf, images)")
    if fmt == "jsonl":
        return read_jsonl(p, mapping, errors=errors)
    if fmt == "csv":
        return read_csv(p, mapping, errors=errors)
    if fmt == "parquet":
        return read_parquet(p, mapping, errors=errors)
    if fmt == "hf":
        return read_hf_disk(p, mapping, split=split, errors=errors)
    if fmt == "images":
        return read_image_folder(p, mapping, errors=errors)
    raise ConfigurationError(f"unknown format {fmt!r}")


__all__ = [
    "Ingested",
    "load_samples",
    "read_csv",
    "read_hf_disk",
    "read_image_folder",
    "read_jsonl",
    "read_parquet",
    "record_to_sample",
    "records_to_samples",
]
