"""``proguard-rails scan INPUT --out OUTPUT``: moderate a whole file or image folder.

For dataset curation and log audits. Reads JSONL, JSON, CSV/TSV or parquet (text
columns configurable) or a folder of images, judges every row with any judge (an
OpenAI-compatible endpoint at full concurrency, in-process vLLM batches, a local
checkpoint, the lite judge, a cascade, or your own), and writes one verdict row per input
(JSONL, or parquet when OUTPUT ends in ``.parquet``) carrying the input's id and row index.

Resumable: rows whose id is already in OUTPUT are skipped, so an interrupted scan
continues where it stopped (``--retry-errors`` re-judges rows that ended in an error).
Input is streamed in chunks through ``ProGuard.acheck_batch``; at most ``max_inflight``
chunks are in flight, and output rows are written in input order as chunks finish.

Only the standard library is needed for JSONL/CSV; parquet needs pyarrow
(``pip install 'proguard-rails[eval]'``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import importlib
import json
import os
import sys
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from .errors import ConfigurationError, InputError, MissingDependencyError, ProGuardError
from .guard import ProGuard
from .policy import Policy
from .verdict import Decision

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_COLUMNS = ("request", "prompt", "text", "content", "input", "question", "query", "message", "user")
RESPONSE_COLUMNS = ("response", "answer", "completion", "output", "agent")
ID_COLUMNS = ("id", "uid", "sample_id", "uuid", "key")
IMAGE_COLUMNS = ("image", "image_path", "images", "img")

#: columns of every output row, in order (parquet schema; JSONL keys)
OUTPUT_COLUMNS = (
    "id", "file", "row", "decision", "status", "modality", "request", "response", "category", "category_name",
    "subcategory_name", "out_of_policy", "description", "reason", "error_type", "error", "fail_mode_applied",
    "truncated", "scores", "judge", "raw",
)
_BOOL_COLUMNS = frozenset({"out_of_policy", "truncated"})


def output_schema() -> Any:
    """The typed Arrow schema of output rows (both engines): strings, ``row`` int64, flags bool,
    ``scores`` a map of score name to float (not a JSON string)."""
    import pyarrow as pa

    types = {"row": pa.int64(), "scores": pa.map_(pa.string(), pa.float64())}
    return pa.schema([(c, types.get(c, pa.bool_() if c in _BOOL_COLUMNS else pa.string())) for c in OUTPUT_COLUMNS])


def normalize_output_row(r: Mapping[str, Any]) -> dict[str, Any]:
    """An output row with every column, ``scores`` as a dict (older outputs stored a JSON string;
    Arrow maps read back as lists of pairs)."""
    row = {c: r.get(c) for c in OUTPUT_COLUMNS}
    sc = row["scores"]
    if isinstance(sc, str):
        try:
            sc = json.loads(sc)
        except json.JSONDecodeError:
            sc = None
    elif isinstance(sc, list):
        sc = dict(sc)
    row["scores"] = sc
    row["file"] = row["file"] or ""
    for c in _BOOL_COLUMNS:
        row[c] = bool(row[c])
    return row


# ============================================================================ judge specs
JUDGE_SPEC_HELP = (
    "auto (PROGUARD_* variables, else lite) | lite | http(s)://HOST/v1[#MODEL] | openai:URL[#MODEL] | "
    "transformers:PATH | vllm:PATH | cascade[:GENERATIVE_SPEC] | py:MODULE:ATTR (a Judge, ProGuard, Backend "
    "or a no-argument factory returning one)"
)


def guard_from_spec(spec: str | None = None, *, taxonomy: Any = None, **overrides: Any) -> ProGuard:
    """A ``ProGuard`` from a short judge spec (see ``JUDGE_SPEC_HELP``).

    ``overrides`` are ``ProGuardSettings`` fields (``max_concurrency``, ``timeout``, ``model`` ...);
    ``None`` values are ignored so CLI options that were not given do not override the environment.
    """
    opts = {k: v for k, v in overrides.items() if v is not None}
    text = (spec or "auto").strip()
    if text in ("", "auto", "env", "default"):
        return _guard_with(opts, taxonomy)
    if text == "lite":
        return _guard_with({**opts, "backend": "lite"}, taxonomy)
    if text.startswith(("http://", "https://")):
        kind, rest = "openai", text
    else:
        kind, _, rest = text.partition(":")
        kind = kind.lower()
    if kind in ("openai", "endpoint"):
        url, _, model = rest.partition("#")
        if not url:
            raise ConfigurationError("judge spec openai: needs a URL, e.g. openai:http://127.0.0.1:8000/v1")
        return _guard_with({**opts, "backend": "openai", "base_url": url, **({"model": model} if model else {})},
                           taxonomy)
    if kind in ("transformers", "local", "vllm"):
        if not rest:
            raise ConfigurationError(f"judge spec {kind}: needs a checkpoint folder, e.g. {kind}:/models/ProGuard-7B")
        backend = "vllm" if kind == "vllm" else "transformers"
        return _guard_with({**opts, "backend": backend, "model_path": rest}, taxonomy)
    if kind == "cascade":
        from .judges.cascade import CascadeJudge
        from .judges.lite import LiteJudge

        inner = guard_from_spec(rest or "auto", taxonomy=taxonomy, **opts)
        if isinstance(inner.judge, LiteJudge):
            raise ConfigurationError(
                "judge spec cascade needs a generative judge behind the lite one: cascade:http://HOST:8000/v1, "
                "or set PROGUARD_BASE_URL / PROGUARD_MODEL_PATH"
            )
        return ProGuard(CascadeJudge(LiteJudge(), inner.judge), taxonomy=taxonomy,
                        settings=inner.settings)
    if kind in ("py", "python"):
        module_name, _, attr = rest.partition(":")
        if not module_name or not attr:
            raise ConfigurationError("judge spec py: is py:MODULE:ATTR, e.g. py:mypackage.guards:make_judge")
        obj: Any = getattr(importlib.import_module(module_name), attr)
        return as_guard(obj() if callable(obj) and not _is_judgelike(obj) else obj, taxonomy=taxonomy, **opts)
    raise ConfigurationError(f"unknown judge spec {text!r}; expected {JUDGE_SPEC_HELP}")


def _guard_with(opts: Mapping[str, Any], taxonomy: Any) -> ProGuard:
    """A ProGuard whose judge is resolved from settings (``backend`` is a settings field here,
    not ProGuard's ``backend=`` argument, which takes a Backend object)."""
    from .guard import resolve_judge
    from .settings import ProGuardSettings

    settings = ProGuardSettings(**opts)
    return ProGuard(resolve_judge(settings), taxonomy=taxonomy, settings=settings)


def _is_judgelike(obj: Any) -> bool:
    from .backends.base import Backend
    from .judges.base import Judge

    return isinstance(obj, (ProGuard, Judge, Backend))


def as_guard(obj: Any, *, taxonomy: Any = None, **overrides: Any) -> ProGuard:
    """Wrap a ``Judge`` or ``Backend`` in a ``ProGuard``; a ``ProGuard`` passes through."""
    from .backends.base import Backend
    from .judges.base import Judge

    opts = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(obj, ProGuard):
        return obj
    if isinstance(obj, Judge):
        return ProGuard(obj, taxonomy=taxonomy, **opts)
    if isinstance(obj, Backend):
        return ProGuard(backend=obj, taxonomy=taxonomy, **opts)
    raise ConfigurationError(f"expected a ProGuard, Judge or Backend, got {type(obj).__name__}")


# ============================================================================ JSONL helpers
def iter_jsonl_tolerant(path: str | Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSONL file, skipping a torn last line (a run killed mid-write)."""
    p = Path(path)
    if not p.exists():
        return
    with p.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                yield obj


def open_jsonl_append(path: str | Path) -> TextIO:
    """Open for appending after cutting a torn last line, so new rows start on a fresh line."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() and p.stat().st_size:
        with p.open("rb+") as fh:
            data = fh.read()
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1  # 0 when there is no complete line at all
                fh.seek(cut)
                fh.truncate()
    return p.open("a", encoding="utf-8")


def write_jsonl_line(fh: TextIO, obj: Mapping[str, Any]) -> None:
    fh.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


# ============================================================================ inputs
TABLE_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet"})
#: nesting deeper than this in one row is refused as a bad row (recursive code downstream,
#: JSON encoders included, would otherwise hit Python's recursion limit)
MAX_NESTING = 64


@dataclass(frozen=True)
class ScanItem:
    """One input: its id, where it came from, and what to judge (or why it cannot be judged)."""

    id: str
    row: int  # position in its file (in the input when the input is one file)
    content: Any  # a dict for ProGuard.acheck_batch ({"request","response","images"} or {"messages"})
    file: str = ""  # the input file, relative to the input folder / glob base ("" for an image folder)
    error: str | None = None  # a bad row: unreadable, not UTF-8, nested too deeply ... (an error row)


@dataclass
class ScanColumns:
    """Which input columns hold what; ``None`` means detect from the usual names."""

    text: Sequence[str] = ()
    response: str | None = None
    image: str | None = None
    id: str | None = None
    messages: str | None = None


@dataclass(frozen=True)
class ResolvedColumns:
    """The columns a scan reads, after detection over the columns of every row of every file."""

    text: tuple[str, ...] = ()
    response: str | None = None
    image: str | None = None
    id: str | None = None
    messages: str | None = None


@dataclass(frozen=True)
class ScanSource:
    """What a scan reads: table files in order (with names relative to the input), or an image folder."""

    spec: str
    files: tuple[Path, ...] = ()
    names: tuple[str, ...] = ()
    image_folder: Path | None = None

    @property
    def multi(self) -> bool:
        """Several files: fallback ids and renamed duplicates carry the file name."""
        return len(self.files) > 1 or (len(self.files) == 1 and self.names[0] != self.files[0].name)


class _BadRow:
    """A row that could not be read; it becomes an error row, the scan goes on."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def resolve_input(spec: str | Path, *, exclude: str | Path | None = None) -> ScanSource:
    """A file, a folder (its table files, recursively; or, with none, an image folder) or a glob.

    ``exclude``: the scan's output (a file, or a folder of parts), never read as input even
    when it lies inside the input folder.
    """
    text = str(spec)
    p = Path(text)
    if p.is_file():
        _check_suffix(p)
        return ScanSource(text, (p,), (p.name,))
    skip = Path(exclude).resolve() if exclude is not None else None

    def keep(f: Path) -> bool:
        if skip is None:
            return True
        r = f.resolve()
        return r != skip and skip not in r.parents and not r.name.startswith(skip.name + ".")

    if p.is_dir():
        tables = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in TABLE_SUFFIXES
                        and not f.name.startswith((".", "_")) and keep(f))
        if not tables:
            return ScanSource(text, image_folder=p)
        return ScanSource(text, tuple(tables), tuple(f.relative_to(p).as_posix() for f in tables))
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
        tables = [m for m in matches if m.suffix.lower() in TABLE_SUFFIXES and keep(m)]
        if not tables:
            raise ConfigurationError(f"scan input {text!r} matches no .jsonl/.json/.csv/.tsv/.parquet file")
        base = Path(os.path.commonpath([str(m.parent.resolve()) for m in tables]))
        return ScanSource(text, tuple(tables), tuple(m.resolve().relative_to(base).as_posix() for m in tables))
    raise ConfigurationError(f"scan input {text} does not exist")


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigurationError(
            f"{path}: cannot scan {path.suffix or 'a file without suffix'}; use .jsonl, .json, .csv, .tsv, "
            ".parquet, a folder of them, a glob, or an image folder"
        )


def _detect(keys: Sequence[str], names: Sequence[str]) -> str | None:
    lower: dict[str, str] = {}
    for k in keys:
        lower.setdefault(str(k).casefold(), str(k))
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _value_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def _too_deep(obj: Any, limit: int = MAX_NESTING) -> bool:
    """Whether lists/dicts nest deeper than ``limit`` (iterative: safe on any depth)."""
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            if d >= limit:
                return True
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, (list, tuple)):
            if d >= limit:
                return True
            stack.extend((v, d + 1) for v in o)
    return False


def _bad_text(obj: Any) -> bool:
    """Whether a string anywhere in ``obj`` cannot be encoded as UTF-8 (lone surrogates, or bytes
    that were not UTF-8, decoded with ``surrogateescape``)."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            try:
                o.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
    return False


def _iter_jsonl_rows(path: Path) -> Iterator[dict[str, Any] | _BadRow]:
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield _BadRow(f"{path.name}:{lineno}: invalid UTF-8 at byte {exc.start}")
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield _BadRow(f"{path.name}:{lineno}: invalid JSON ({exc.msg})")
                continue
            except RecursionError:
                yield _BadRow(f"{path.name}:{lineno}: JSON nested too deeply")
                continue
            yield obj if isinstance(obj, dict) else {"text": obj}


def _iter_table_rows(path: Path) -> Iterator[dict[str, Any] | _BadRow]:
    """Rows of one table file; a row that cannot be read is a ``_BadRow`` (never an exception)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _iter_jsonl_rows(path)
    elif suffix == ".json":
        try:
            data = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            yield _BadRow(f"{path.name}: unreadable JSON file ({type(exc).__name__}: {str(exc)[:200]})")
            return
        for obj in data if isinstance(data, list) else [data]:
            yield obj if isinstance(obj, dict) else {"text": obj}
    elif suffix in (".csv", ".tsv"):
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
        # bytes that are not UTF-8 survive decoding as lone surrogates; such rows become error rows
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    yield _BadRow(f"{path.name}:{reader.line_num}: unreadable CSV row ({exc})")
                    continue
                yield row
    elif suffix == ".parquet":
        pq = _pyarrow_parquet("reading parquet input")
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=1024):
            try:
                yield from batch.to_pylist()
            except (UnicodeDecodeError, ValueError, RecursionError):
                for j in range(batch.num_rows):  # find the bad row(s); keep the others
                    try:
                        yield batch.slice(j, 1).to_pylist()[0]
                    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                        yield _BadRow(f"{path.name}: unreadable parquet row ({type(exc).__name__})")
    else:
        _check_suffix(path)


def table_keys(path: Path) -> list[str]:
    """Every column of a table file in order of first appearance (all rows, not the first one)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return list(_pyarrow_parquet("reading parquet input").ParquetFile(path).schema_arrow.names)
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",").fieldnames or [])
    keys: dict[str, None] = {}
    for row in _iter_table_rows(path):
        if isinstance(row, dict):
            for k in row:
                keys.setdefault(str(k), None)
    return list(keys)


def merge_keys(per_file: Iterable[Sequence[str]]) -> list[str]:
    keys: dict[str, None] = {}
    for ks in per_file:
        for k in ks:
            keys.setdefault(k, None)
    return list(keys)


def resolve_columns(keys: Sequence[str], columns: ScanColumns | None, where: str) -> ResolvedColumns:
    """Choose the columns from those of every row (explicit choices first, then the usual names)."""
    cols = columns or ScanColumns()
    if not keys and not (cols.text or cols.response or cols.image or cols.id or cols.messages):
        return ResolvedColumns()  # no readable row at all: every row is an error row
    text_cols: list[str] | None = list(cols.text) or None
    resp_col, img_col, id_col, msg_col = cols.response, cols.image, cols.id, cols.messages
    if msg_col is None and text_cols is None:
        msg_col = _detect(keys, ("messages", "conversation"))
    if text_cols is None and msg_col is None:
        found = _detect(keys, TEXT_COLUMNS)
        text_cols = [found] if found else []
    if resp_col is None and not cols.text and msg_col is None:
        resp_col = _detect(keys, RESPONSE_COLUMNS)
    img_col = img_col or _detect(keys, IMAGE_COLUMNS)
    id_col = id_col or _detect(keys, ID_COLUMNS)
    for name in [*(text_cols or []), resp_col, img_col, id_col, msg_col]:
        if name is not None and name not in keys:
            raise ConfigurationError(f"{where}: no column {name!r}; columns are {', '.join(map(str, keys))}")
    if not text_cols and msg_col is None and img_col is None:
        raise ConfigurationError(
            f"{where}: no text column found among {', '.join(map(str, keys)) or '(none)'}; "
            "choose one with --text-column"
        )
    return ResolvedColumns(tuple(text_cols or ()), resp_col, img_col, id_col, msg_col)


def source_columns(source: ScanSource, columns: ScanColumns | None) -> ResolvedColumns:
    return resolve_columns(merge_keys(table_keys(f) for f in source.files), columns, source.spec)


def fallback_id(name: str | None, row: int) -> str:
    """The id of a row without one: its row index (one file) or ``FILE:ROW`` (several files)."""
    return str(row) if name is None else f"{name}:{row}"


def renamed_id(item_id: str, name: str | None, row: int) -> str:
    """A duplicate id (not its first occurrence) made unique, so resumption stays unambiguous."""
    return f"{item_id}#row{row}" if name is None else f"{item_id}#{name}:{row}"


def row_id(raw: dict[str, Any] | _BadRow, rc: ResolvedColumns, name: str | None, row: int) -> str:
    if isinstance(raw, _BadRow) or rc.id is None:
        return fallback_id(name, row)
    rid = _value_text(raw.get(rc.id))
    if rid and _bad_text(rid):
        rid = rid.encode("utf-8", "backslashreplace").decode("utf-8")
    return rid or fallback_id(name, row)


def _image_value(v: Any, root: Path) -> str | bytes | None:
    if isinstance(v, dict):  # Hugging Face datasets' Image feature: {"bytes": ..., "path": ...}
        v = v.get("bytes") or v.get("path")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v) or None
    s = _value_text(v)
    if s and not s.startswith("data:") and "://" not in s[:12] and not Path(s).is_absolute():
        s = str(root / s)
    return s or None


def row_content(raw: dict[str, Any], rc: ResolvedColumns, root: Path) -> dict[str, Any]:
    """What to judge for one row (raises ``InputError`` for a row that cannot be judged)."""
    if _too_deep(raw):
        raise InputError(f"row nested deeper than {MAX_NESTING} levels")
    if rc.messages is not None:
        msgs = raw.get(rc.messages)
        if isinstance(msgs, str):
            try:
                msgs = json.loads(msgs)
            except json.JSONDecodeError:
                msgs = [{"role": "user", "content": msgs}]
            except RecursionError as exc:
                raise InputError("messages JSON nested too deeply") from exc
            if _too_deep(msgs):
                raise InputError(f"messages nested deeper than {MAX_NESTING} levels")
        content: dict[str, Any] = {"messages": msgs}
    else:
        content = {"request": "\n\n".join(t for t in (_value_text(raw.get(c)) for c in rc.text) if t)}
        if rc.response is not None:
            resp = _value_text(raw.get(rc.response))
            if resp:
                content["response"] = resp
        if rc.image is not None:
            v = raw.get(rc.image)
            values = v if isinstance(v, (list, tuple)) else [v]
            images = [x for x in (_image_value(i, root) for i in values) if x is not None]
            if images:
                content["images"] = images
    if _bad_text(content):
        raise InputError("text is not valid UTF-8 (undecodable bytes or lone surrogates)")
    return content


def make_item(raw: dict[str, Any] | _BadRow, row: int, item_id: str, rc: ResolvedColumns, *,
              file: str, root: Path) -> ScanItem:
    if isinstance(raw, _BadRow):
        return ScanItem(item_id, row, None, file, raw.message)
    try:
        return ScanItem(item_id, row, row_content(raw, rc, root), file)
    except InputError as exc:
        return ScanItem(item_id, row, None, file, f"{file or 'input'} row {row}: {exc}")
    except RecursionError:
        return ScanItem(item_id, row, None, file, f"{file or 'input'} row {row}: nested too deeply")


def iter_file_items(path: Path, name: str, rc: ResolvedColumns, *, multi: bool,
                    image_root: str | Path | None = None) -> Iterator[ScanItem]:
    """Items of one table file, ids as read (duplicates not yet renamed)."""
    root = Path(image_root) if image_root else path.parent
    id_name = name if multi else None
    for i, raw in enumerate(_iter_table_rows(path)):
        yield make_item(raw, i, row_id(raw, rc, id_name, i), rc, file=name, root=root)


def _pyarrow_parquet(feature: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "eval", feature) from exc
    return pq


def _count_file(p: Path) -> int | None:
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        with p.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    if suffix == ".parquet":
        return int(_pyarrow_parquet("reading parquet input").ParquetFile(p).metadata.num_rows)
    return None


def count_inputs(path: str | Path, *, exclude: str | Path | None = None) -> int | None:
    """Number of inputs, when cheap to know (for the progress bar); ``None`` otherwise."""
    source = resolve_input(path, exclude=exclude)
    if source.image_folder is not None:
        return sum(1 for _ in _image_files(source.image_folder))
    total = 0
    for f in source.files:
        n = _count_file(f)
        if n is None:
            return None
        total += n
    return total


def _image_files(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            yield p


def iter_inputs(
    path: str | Path,
    columns: ScanColumns | None = None,
    *,
    image_prompt: str | None = None,
    image_root: str | Path | None = None,
    exclude: str | Path | None = None,
) -> Iterator[ScanItem]:
    """Stream the inputs of a file, a folder or glob of files, or an image folder as ``ScanItem``s.

    Columns are detected over the columns of every row of every file (a column first seen in
    a later row counts). Rows that cannot be read are items with ``error`` set. Duplicate ids
    (after the first occurrence) are renamed; nothing is judged here.
    """
    source = resolve_input(path, exclude=exclude)
    if source.image_folder is not None:
        folder = source.image_folder
        for i, img in enumerate(_image_files(folder)):
            content: dict[str, Any] = {"images": [str(img)]}
            if image_prompt:
                content["request"] = image_prompt
            yield ScanItem(img.relative_to(folder).as_posix(), i, content)
        return
    rc = source_columns(source, columns)
    seen: set[str] = set()
    for f, name in zip(source.files, source.names, strict=True):
        for item in iter_file_items(f, name, rc, multi=source.multi, image_root=image_root):
            if item.id in seen:
                item = replace(item, id=renamed_id(item.id, name if source.multi else None, item.row))
            seen.add(item.id)
            yield item


# ============================================================================ output rows
def decision_row(item: ScanItem, decision: Decision, *, keep_raw: bool = False) -> dict[str, Any]:
    """The flat output row of one input (JSON-safe; typed columns in parquet, see ``output_schema``)."""
    d = decision.to_dict()
    return {
        "id": item.id,
        "file": item.file,
        "row": item.row,
        "decision": d["decision"],
        "status": d["status"],
        "modality": d["modality"],
        "request": d["request"],
        "response": d["response"],
        "category": d["category"],
        "category_name": d["category_name"],
        "subcategory_name": d["subcategory_name"],
        "out_of_policy": bool(d["out_of_policy"]),
        "description": d["description"],
        "reason": d["reason"],
        "error_type": d["error_type"],
        "error": d["error"],
        "fail_mode_applied": d["fail_mode_applied"],
        "truncated": bool(d["truncated"]),
        "scores": {str(k): float(v) for k, v in d["scores"].items()} if d["scores"] else None,
        "judge": d["judge"],
        "raw": d["raw"] if keep_raw else None,
    }


async def ajudge_items(
    guard: ProGuard, items: Sequence[ScanItem], *, policy: Policy | None = None, keep_raw: bool = False
) -> list[dict[str, Any]]:
    """Output rows for ``items``, in order; never raises for a bad row.

    Bad rows (``item.error``) become input-error rows. The others go to the judge in one
    ``acheck_batch``; if that call fails as a whole, each item is retried alone so that one
    input that breaks the engine becomes one error row and the rest are still judged.
    """
    pol = policy or guard.policy
    out: list[dict[str, Any] | None] = [None] * len(items)
    todo: list[int] = []
    for i, it in enumerate(items):
        if it.error is not None:
            out[i] = decision_row(it, pol.decide_error(InputError(it.error)), keep_raw=keep_raw)
        else:
            todo.append(i)
    if todo:
        try:
            decisions = await guard.acheck_batch([items[i].content for i in todo], policy=pol)
        except Exception:  # isolate the input that broke the batch
            decisions = []
            for i in todo:
                try:
                    (d,) = await guard.acheck_batch([items[i].content], policy=pol)
                except Exception as exc:
                    d = pol.decide_error(exc)
                decisions.append(d)
        for i, d in zip(todo, decisions, strict=True):
            out[i] = decision_row(items[i], d, keep_raw=keep_raw)
    return [r for r in out if r is not None]


@dataclass
class ScanSummary:
    """Counts over the whole output (rows from earlier runs included)."""

    total: int = 0
    judged_now: int = 0
    skipped_done: int = 0
    status: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    category_names: dict[str, str] = field(default_factory=dict)
    out_of_policy: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    output: str = ""

    def add(self, row: Mapping[str, Any]) -> None:
        self.total += 1
        self.status[str(row.get("status"))] += 1
        if row.get("status") == "error":
            self.errors[str(row.get("error_type"))] += 1
            return
        if row.get("out_of_policy"):
            self.out_of_policy[str(row.get("description"))] += 1
            self.categories["out-of-policy"] += 1
        elif row.get("category"):
            cid = str(row["category"])
            self.categories[cid] += 1
            name = row.get("subcategory_name") or row.get("category_name")
            if name:
                self.category_names[cid] = str(name)
        elif row.get("request") == "unsafe" or row.get("response") == "unsafe":
            self.categories["unsafe, no category"] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "total": self.total,
            "judged_now": self.judged_now,
            "skipped_already_done": self.skipped_done,
            "status": dict(self.status),
            "categories": dict(self.categories.most_common()),
            "category_names": self.category_names,
            "out_of_policy": dict(self.out_of_policy.most_common(20)),
            "errors": dict(self.errors),
        }

    def format(self) -> str:
        lines = [
            f"scan: {self.total} rows in {self.output} ({self.judged_now} judged now, "
            f"{self.skipped_done} already done)",
            "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.status.items())),
        ]
        flagged = sum(self.categories.values())
        lines.append(f"  unsafe by category ({flagged}):")
        for cid, n in self.categories.most_common():
            name = self.category_names.get(cid, "")
            lines.append(f"    {cid:<22} {n:>7}  {name}")
        if self.out_of_policy:
            lines.append("  out-of-policy risks named:")
            for desc, n in self.out_of_policy.most_common(10):
                lines.append(f"    {n:>7}  {desc}")
        if self.errors:
            lines.append("  errors: " + ", ".join(f"{k} {v}" for k, v in self.errors.most_common()))
        return "\n".join(lines)


class _Output:
    """Where rows go: JSONL appended directly, or parquet via a JSONL side file merged at the end."""

    def __init__(self, path: Path, *, retry_errors: bool) -> None:
        self.path = path
        self.parquet = path.suffix.lower() == ".parquet"
        self.stream_path = path.with_name(path.name + ".partial.jsonl") if self.parquet else path
        self.retry_errors = retry_errors
        self._fh: TextIO | None = None

    def existing(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        if self.parquet and self.path.exists():
            rows.extend(_pyarrow_parquet("resuming a parquet scan").read_table(self.path).to_pylist())
        rows.extend(iter_jsonl_tolerant(self.stream_path))
        last: dict[str, dict[str, Any]] = {}
        for r in rows:  # a retried id appears twice; the newest row wins
            last[str(r.get("id"))] = r
        kept = [r for r in last.values() if not (self.retry_errors and r.get("status") == "error")]
        if self.retry_errors and len(kept) < len(rows) and not self.parquet:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for r in kept:
                    write_jsonl_line(fh, r)
            os.replace(tmp, self.path)
        return kept

    def open(self) -> None:
        self._fh = open_jsonl_append(self.stream_path)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        assert self._fh is not None
        for r in rows:
            write_jsonl_line(self._fh, r)
        self._fh.flush()

    def close(self, *, finished: bool) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self.parquet and finished:
            self._merge_parquet()

    def _merge_parquet(self) -> None:
        import pyarrow as pa

        pq = _pyarrow_parquet("writing parquet output")
        rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for r in pq.read_table(self.path).to_pylist():
                rows[str(r.get("id"))] = r
        for r in iter_jsonl_tolerant(self.stream_path):
            rows[str(r.get("id"))] = r
        ordered = sorted((normalize_output_row(r) for r in rows.values()),
                         key=lambda r: (r["file"], int(r["row"] or 0)))
        table = pa.Table.from_pylist(ordered, schema=output_schema())
        tmp = self.path.with_name(self.path.name + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)
        self.stream_path.unlink(missing_ok=True)


# ============================================================================ engine
async def ascan(
    input: str | Path,
    output: str | Path,
    *,
    guard: ProGuard | Any | None = None,
    columns: ScanColumns | None = None,
    policy: Policy | None = None,
    batch_size: int = 64,
    max_inflight: int = 4,
    keep_raw: bool = False,
    retry_errors: bool = False,
    limit: int | None = None,
    image_prompt: str | None = None,
    image_root: str | Path | None = None,
    progress: bool = True,
) -> ScanSummary:
    """Judge every input not already in ``output``; returns the summary of the whole output.

    ``batch_size`` inputs go to ``guard.acheck_batch`` at once (one judge call: the endpoint
    backend spreads them over ``max_concurrency`` connections, in-process vLLM batches them);
    ``max_inflight`` chunks run at a time. Rows are written in input order, flushed per chunk,
    so an interruption loses at most the chunks in flight.
    """
    if batch_size < 1 or max_inflight < 1:
        raise ConfigurationError("batch_size and max_inflight must be at least 1")
    g = as_guard(guard) if guard is not None else ProGuard()
    out = _Output(Path(output), retry_errors=retry_errors)
    summary = ScanSummary(output=str(output))
    done: set[str] = set()
    for r in out.existing():
        done.add(str(r.get("id")))
        summary.add(r)
    total = count_inputs(input, exclude=output)
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=f"scan {Path(input).name}", unit="row", disable=not progress, dynamic_ncols=True)
    pending: deque[tuple[list[ScanItem], asyncio.Task[list[dict[str, Any]]]]] = deque()

    def flush_one(items: list[ScanItem], rows: list[dict[str, Any]]) -> None:
        out.write(rows)
        for r in rows:
            summary.add(r)
        summary.judged_now += len(rows)
        bar.update(len(rows))

    out.open()
    finished = False
    try:
        chunk: list[ScanItem] = []
        seen = 0
        for item in iter_inputs(input, columns, image_prompt=image_prompt, image_root=image_root,
                                exclude=output):
            if limit is not None and seen >= limit:
                break
            seen += 1
            if item.id in done:
                summary.skipped_done += 1
                bar.update(1)
                continue
            chunk.append(item)
            if len(chunk) >= batch_size:
                pending.append((chunk, asyncio.ensure_future(ajudge_items(g, chunk, policy=policy, keep_raw=keep_raw))))
                chunk = []
                while len(pending) >= max_inflight:
                    items, task = pending.popleft()
                    flush_one(items, await task)
        if chunk:
            pending.append((chunk, asyncio.ensure_future(ajudge_items(g, chunk, policy=policy, keep_raw=keep_raw))))
        while pending:
            items, task = pending.popleft()
            flush_one(items, await task)
        finished = True
    finally:
        for _, task in pending:
            task.cancel()
        bar.close()
        out.close(finished=finished)
    return summary


def scan(input: str | Path, output: str | Path, **kwargs: Any) -> ScanSummary:
    """Sync ``ascan`` (works inside a running event loop too)."""
    from ._portal import run_sync

    return run_sync(ascan(input, output, **kwargs))


# ============================================================================ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``proguard-rails scan``."""
    parser.description = "Moderate a JSONL/JSON/CSV/parquet file or an image folder; one verdict row per input."
    parser.add_argument("input", help="input file (.jsonl .json .csv .tsv .parquet) or image folder")
    parser.add_argument("--out", "-o", required=True,
                        help="output file: .jsonl (appended, resumable) or .parquet (written at the end)")
    parser.add_argument("--judge", default="auto", help=JUDGE_SPEC_HELP + "; ray engine: several endpoints "
                        "comma-separated (each actor sends its batches to them in turn)")
    parser.add_argument("--model", help="model name at the endpoint (default: discovered)")
    parser.add_argument("--max-concurrency", type=int, help="concurrent requests to the endpoint [PROGUARD_MAX_CONCURRENCY]")
    parser.add_argument("--timeout", type=float, help="deadline per check in seconds [PROGUARD_TIMEOUT]")
    parser.add_argument("--fail-mode", choices=["closed", "open"], help="what an error decides (the row keeps status=error)")
    parser.add_argument("--taxonomy", help="custom policy YAML (default: the released policy)")
    parser.add_argument("--hold-out", action="append", default=[], metavar="ID", help="hide a category from the policy")
    parser.add_argument("--config", metavar="FILE", help="policy file (YAML/TOML) with per-category actions, "
                        "thresholds, out-of-policy action and fail mode [PROGUARD_CONFIG]")
    parser.add_argument("--text-column", action="append", default=[], metavar="COL",
                        help="column(s) with the request text (repeat to join several); default: detected")
    parser.add_argument("--response-column", help="column with the response to judge (default: detected)")
    parser.add_argument("--messages-column", help="column with an OpenAI-style messages list")
    parser.add_argument("--image-column", help="column with image path(s) (relative to the input file)")
    parser.add_argument("--id-column", help="column with a unique id (default: id/uid/..., else the row index)")
    parser.add_argument("--image-root", help="folder that relative image paths are relative to")
    parser.add_argument("--image-prompt", help="image folders: text to judge with every image (text-image mode)")
    parser.add_argument("--batch-size", type=int, default=64, help="inputs per judge call (default 64; "
                        "use 256-1024 for in-process vLLM)")
    parser.add_argument("--max-inflight", type=int, default=4, help="chunks judged at once (default 4; local engine)")
    parser.add_argument("--limit", type=int, help="only the first N inputs")
    parser.add_argument("--retry-errors", action="store_true", help="re-judge rows that ended in an error")
    parser.add_argument("--keep-raw", action="store_true", help="keep the model's raw answer in each row")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--summary-json", help="also write the summary as JSON here")
    ray = parser.add_argument_group("engine")
    ray.add_argument("--engine", choices=["local", "ray"], default="local",
                     help="local: this process (default); ray: a pool of Ray actors with Ray Data "
                     "(pip install 'proguard-rails[ray]'); OUTPUT is then a folder of part files")
    ray.add_argument("--address", help="ray: the cluster to join (auto, ray://HOST:10001; default: RAY_ADDRESS, "
                     "else a local cluster started for this scan)")
    ray.add_argument("--num-workers", type=int, help="ray: guard actors (default: one per CPU, or per GPU for vllm:)")
    ray.add_argument("--cpus-per-worker", type=float, help="ray: CPUs per actor (default 1)")
    ray.add_argument("--gpus-per-worker", type=float, help="ray: GPUs per actor (default 1 for vllm:, else 0)")
    ray.add_argument("--rows-per-file", type=int, help="ray: rows per output part file (default: batch size, at "
                     "least 1024); a run stopped mid-way judges again at most the rows not yet in a part")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``proguard-rails scan``; exit 0 when done (even with error rows), 2 on bad usage."""
    from .taxonomy import Taxonomy

    try:
        taxonomy = Taxonomy.from_yaml(args.taxonomy) if args.taxonomy else Taxonomy.default()
        if args.hold_out:
            taxonomy = taxonomy.hold_out(args.hold_out)
        judge_options = {"model": args.model, "max_concurrency": args.max_concurrency, "timeout": args.timeout,
                         "fail_mode": args.fail_mode, "config": getattr(args, "config", None)}
        columns = ScanColumns(text=tuple(args.text_column), response=args.response_column,
                              image=args.image_column, id=args.id_column, messages=args.messages_column)
        if getattr(args, "engine", "local") == "ray":
            from .scan_ray import scan_ray

            summary = scan_ray(
                args.input, args.out, judge=args.judge, taxonomy=taxonomy, columns=columns, address=args.address,
                num_workers=args.num_workers, batch_size=args.batch_size, num_cpus=args.cpus_per_worker,
                num_gpus=args.gpus_per_worker, keep_raw=args.keep_raw, retry_errors=args.retry_errors,
                limit=args.limit, image_root=args.image_root, rows_per_file=args.rows_per_file,
                progress=not args.no_progress, **judge_options,
            )
        else:
            guard = guard_from_spec(args.judge, taxonomy=taxonomy, **judge_options)
            if args.fail_mode:  # the option wins over the policy file's fail_mode
                guard.policy = guard.policy.model_copy(update={"fail_mode": args.fail_mode})

            async def _main() -> ScanSummary:
                try:
                    return await ascan(
                        args.input, args.out, guard=guard, columns=columns, batch_size=args.batch_size,
                        max_inflight=args.max_inflight, keep_raw=args.keep_raw, retry_errors=args.retry_errors,
                        limit=args.limit, image_prompt=args.image_prompt, image_root=args.image_root,
                        progress=not args.no_progress,
                    )
                finally:
                    await guard.aclose()

            # asyncio.run (not the portal thread): Ctrl-C cancels the chunks in flight and the
            # output is closed cleanly, ready to resume.
            summary = asyncio.run(_main())
    except (ProGuardError, OSError) as exc:
        print(f"proguard-rails scan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nproguard-rails scan: interrupted; rerun the same command to resume ({args.out})", file=sys.stderr)
        return 130
    print(summary.format())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary.to_dict(), indent=2), encoding="utf-8")
    return 0


__all__ = [
    "JUDGE_SPEC_HELP",
    "ScanColumns",
    "ScanItem",
    "ScanSummary",
    "add_arguments",
    "as_guard",
    "ascan",
    "decision_row",
    "guard_from_spec",
    "iter_inputs",
    "iter_jsonl_tolerant",
    "open_jsonl_append",
    "run_cli",
    "scan",
]
