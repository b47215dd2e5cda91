"""``proguard-rails scan --engine ray``: the scan on a Ray cluster, with Ray Data.

The same inputs, judge options, bad-row handling and output rows as the single-process
scan (:mod:`proguard_rails.scan`), spread over a pool of Ray actors:

1. planning (Ray tasks, one per input file): the columns of every row of every file, then
   the id of every row, so that duplicate ids are renamed exactly as the single-process
   scan renames them and rows already in the output are known before anything is judged;
2. ``read_datasource`` (one read task per file) streams rows that still need a verdict;
3. ``map_batches`` with :class:`GuardWorker`, a class: each actor builds its ``ProGuard``
   once (the lite judge or an OpenAI-compatible endpoint from CPU actors, in-process vLLM
   on GPU actors with ``num_gpus=1``) and judges ``batch_size`` rows per call. Actors are
   restarted and their batches retried when a worker dies (``max_restarts=-1``,
   ``max_task_retries=-1``), so a killed worker loses no rows;
4. ``write_datasink`` with :class:`PartsDatasink`: each write task writes one part file
   atomically (temporary name, then rename) named after a hash of the ids it holds, so a
   retried write replaces its own file and never adds a second copy of its rows.

OUTPUT is a folder of ``part-*.parquet`` (or ``part-*.jsonl`` when OUTPUT ends in
``.jsonl``) files with the typed columns of :func:`proguard_rails.scan.output_schema`.
A rerun over the same input and output judges only the rows whose id is not there yet.

Ray is imported only when this engine runs (``pip install 'proguard-rails[ray]'``).
Inputs and OUTPUT must be paths every node of the cluster can read and write (one machine,
or a shared filesystem such as NFS mounted at the same path on every node).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, MissingDependencyError
from .policy import Policy
from .scan import (
    OUTPUT_COLUMNS,
    ResolvedColumns,
    ScanColumns,
    ScanItem,
    ScanSource,
    ScanSummary,
    _iter_table_rows,
    _pyarrow_parquet,
    ajudge_items,
    as_guard,
    guard_from_spec,
    iter_jsonl_tolerant,
    make_item,
    merge_keys,
    normalize_output_row,
    output_schema,
    renamed_id,
    resolve_columns,
    resolve_input,
    row_id,
    table_keys,
    write_jsonl_line,
)

logger = logging.getLogger("proguard_rails.scan")

PART_PREFIX = "part-"
_TMP_PREFIX = ".tmp-"
#: the columns of one row between the read tasks and the guard actors
_INPUT_COLUMNS = ("id", "file", "row", "content", "error")


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "the ray scan engine (--engine ray)") from exc
    return ray


def id_hash(item_id: str) -> int:
    """A 64-bit hash of an id (ids are compared by hash on the driver: 8 bytes per row)."""
    digest = hashlib.blake2b(item_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# ============================================================================ output folder
def _output_format(path: Path) -> str:
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "parquet"


def _part_files(out: Path, fmt: str) -> list[Path]:
    return sorted(p for p in out.glob(f"{PART_PREFIX}*.{fmt}") if p.is_file())


def _read_part(path: Path, fmt: str, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    if fmt == "parquet":
        pq = _pyarrow_parquet("reading the ray scan output")
        return [normalize_output_row(r) for r in pq.read_table(path, columns=columns).to_pylist()]
    return [normalize_output_row(r) for r in iter_jsonl_tolerant(path)]


def _write_part_atomic(out: Path, name: str, rows: Sequence[Mapping[str, Any]], fmt: str) -> Path:
    """Write ``rows`` to ``out/name`` through a temporary file and a rename: a reader (or a rerun)
    sees the whole part or none of it."""
    final = out / name
    tmp = out / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{name}"
    try:
        if fmt == "parquet":
            import pyarrow as pa

            pq = _pyarrow_parquet("writing the ray scan output")
            pq.write_table(pa.Table.from_pylist([normalize_output_row(r) for r in rows], schema=output_schema()), tmp)
        else:
            with tmp.open("w", encoding="utf-8") as fh:
                for r in rows:
                    write_jsonl_line(fh, normalize_output_row(r))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def part_name(ids: Sequence[str], fmt: str) -> str:
    """A part's name from the ids it holds: the same rows always go to the same file."""
    h = hashlib.sha256()
    for i in sorted(ids):
        h.update(i.encode("utf-8", "surrogatepass") + b"\x00")
    return f"{PART_PREFIX}{h.hexdigest()[:32]}.{fmt}"


def prepare_output(out: Path, fmt: str, *, retry_errors: bool) -> list[str]:
    """Make the output folder ready to resume; returns the ids already judged.

    Leftover temporary files of a killed run are removed; an unreadable part (written by
    hand or damaged) is moved aside as ``*.corrupt`` so its rows are judged again; with
    ``retry_errors`` error rows are dropped from their parts so they are judged again.
    """
    if out.exists() and not out.is_dir():
        raise ConfigurationError(
            f"{out} is a file; the ray engine writes a folder of part files: choose a new OUTPUT folder "
            "(a single-process scan output cannot be resumed by the ray engine)"
        )
    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(f"{_TMP_PREFIX}*"):
        tmp.unlink(missing_ok=True)
    done: list[str] = []
    for part in _part_files(out, fmt):
        try:
            rows = _read_part(part, fmt, None if retry_errors else ["id"])
        except Exception as exc:  # pyarrow raises several types for a damaged file
            logger.warning("scan output part %s is unreadable (%s); its rows will be judged again", part, exc)
            os.replace(part, part.with_name(part.name + ".corrupt"))
            continue
        if retry_errors and any(r["status"] == "error" for r in rows):
            kept = [r for r in rows if r["status"] != "error"]
            if kept:
                _write_part_atomic(out, part_name([r["id"] for r in kept], fmt), kept, fmt)
            part.unlink()
            rows = kept
        done.extend(str(r["id"]) for r in rows)
    return done


def dedupe_output(out: Path, fmt: str) -> int:
    """Drop any row whose id is already in an earlier part (a safety net; returns how many).
    Reads only the id column; rewrites only a part that holds a duplicate."""
    seen: set[str] = set()
    affected: list[Path] = []
    for part in _part_files(out, fmt):
        ids = [str(r["id"]) for r in _read_part(part, fmt, ["id"])]
        if any(i in seen for i in ids) or len(set(ids)) != len(ids):
            affected.append(part)
        seen.update(ids)
    if not affected:
        return 0
    seen = set()
    dropped = 0
    for part in _part_files(out, fmt):
        rows = _read_part(part, fmt, None if part in affected else ["id"])
        kept = [r for r in rows if not (r["id"] in seen or seen.add(r["id"]))]  # type: ignore[func-returns-value]
        if part in affected and len(kept) != len(rows):
            dropped += len(rows) - len(kept)
            part.unlink()
            if kept:
                _write_part_atomic(out, part_name([r["id"] for r in kept], fmt), kept, fmt)
    return dropped


def read_output(out: str | Path) -> list[dict[str, Any]]:
    """Every row of a ray scan output folder, ordered by input file and row."""
    p = Path(out)
    fmt = _output_format(p)
    rows = [r for part in _part_files(p, fmt) for r in _read_part(part, fmt)]
    return sorted(rows, key=lambda r: (r["file"], int(r["row"] or 0), r["id"]))


_SUMMARY_COLUMNS = ["id", "status", "error_type", "out_of_policy", "description", "category", "category_name",
                    "subcategory_name", "request", "response"]


def summarize_output(out: Path, fmt: str) -> ScanSummary:
    summary = ScanSummary(output=str(out))
    for part in _part_files(out, fmt):
        for r in _read_part(part, fmt, _SUMMARY_COLUMNS):
            summary.add(r)
    return summary


def parts_datasink(out: str, fmt: str, min_rows: int) -> Any:
    """A Ray Data ``Datasink`` that writes each write task's rows as one atomic part file
    (the class is built on first use: its base class comes from ray, imported lazily)."""
    return _parts_datasink_class()(out, fmt, min_rows)


_DATASINK_CLASS: Any = None


def _parts_datasink_class() -> Any:
    global _DATASINK_CLASS
    if _DATASINK_CLASS is not None:
        return _DATASINK_CLASS
    from ray.data import Datasink
    from ray.data.block import BlockAccessor

    class _PartsDatasink(Datasink[int]):
        def __init__(self, out: str, fmt: str, min_rows: int) -> None:
            self.out = out
            self.fmt = fmt
            self.min_rows = min_rows

        def get_name(self) -> str:
            return "ScanParts"

        def on_write_start(self, schema: Any = None) -> None:
            Path(self.out).mkdir(parents=True, exist_ok=True)

        @property
        def min_rows_per_write(self) -> int:
            return self.min_rows

        def write(self, blocks: Any, ctx: Any) -> int:
            rows: list[dict[str, Any]] = []
            for block in blocks:
                rows.extend(BlockAccessor.for_block(block).to_arrow().to_pylist())
            if rows:
                _write_part_atomic(Path(self.out), part_name([str(r["id"]) for r in rows], self.fmt), rows,
                                   self.fmt)
            return len(rows)

    _DATASINK_CLASS = _PartsDatasink
    return _PartsDatasink


# ============================================================================ planning
@dataclass(frozen=True)
class FilePlan:
    """What one read task reads: a file, the rows to rename (duplicate ids), how many rows."""

    path: str
    name: str
    renames: frozenset[int] = frozenset()
    max_rows: int | None = None


def _file_ids(path: str, name: str, rc: ResolvedColumns, multi: bool) -> Any:
    """The id hash of every row of one file (as read; duplicates are renamed later)."""
    import numpy as np

    id_name = name if multi else None
    hashes = [id_hash(row_id(raw, rc, id_name, i)) for i, raw in enumerate(_iter_table_rows(Path(path)))]
    return np.asarray(hashes, dtype=np.int64)


def _renamed_hashes(path: str, name: str, rc: ResolvedColumns, multi: bool, rows: frozenset[int]) -> dict[int, int]:
    """The id hash of each renamed duplicate row of one file (its id after renaming)."""
    id_name = name if multi else None
    out: dict[int, int] = {}
    for i, raw in enumerate(_iter_table_rows(Path(path))):
        if i in rows:
            out[i] = id_hash(renamed_id(row_id(raw, rc, id_name, i), id_name, i))
            if len(out) == len(rows):
                break
    return out


def _duplicate_rows(per_file: Sequence[Any]) -> list[set[int]]:
    """For each file, the rows whose id appeared before (in file order, then row order)."""
    import numpy as np

    if not per_file:
        return []
    allh = np.concatenate(per_file) if per_file else np.zeros(0, dtype=np.int64)
    out: list[set[int]] = [set() for _ in per_file]
    if allh.size == 0:
        return out
    _, first, counts = np.unique(allh, return_index=True, return_counts=True)
    if not (counts > 1).any():
        return out
    dup_values = set(allh[first[counts > 1]].tolist())
    first_pos = {int(allh[i]): int(i) for i in first[counts > 1]}
    offsets = np.cumsum([0] + [len(h) for h in per_file])
    for fi, h in enumerate(per_file):
        for r in np.nonzero(np.isin(h, list(dup_values)))[0].tolist():
            if first_pos[int(h[r])] != offsets[fi] + r:
                out[fi].add(int(r))
    return out


# ============================================================================ reading
_DATASOURCE_CLASS: Any = None


def _datasource_class() -> Any:
    global _DATASOURCE_CLASS
    if _DATASOURCE_CLASS is not None:
        return _DATASOURCE_CLASS
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class _ScanDS(Datasource):
        """One read task per input file; each yields blocks of rows still to judge."""

        def __init__(self, plans: Sequence[FilePlan], rc: ResolvedColumns, multi: bool, done_ref: Any,
                     block_rows: int, image_root: str | None) -> None:
            self.plans = list(plans)
            self.rc = rc
            self.multi = multi
            self.done_ref = done_ref
            self.block_rows = block_rows
            self.image_root = image_root

        def get_name(self) -> str:
            return "ScanInput"

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(os.path.getsize(p.path) for p in self.plans if os.path.exists(p.path)) or None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            tasks = []
            for plan in self.plans:
                meta = BlockMetadata(num_rows=plan.max_rows, size_bytes=None, input_files=(plan.path,),
                                     exec_stats=None)
                fn = _make_reader(plan, self.rc, self.multi, self.done_ref, self.block_rows, self.image_root)
                tasks.append(ReadTask(fn, meta))
            return tasks

    _DATASOURCE_CLASS = _ScanDS
    return _ScanDS


def _content_json(item: ScanItem) -> tuple[str | None, str | None]:
    """The item's content as JSON for the trip to an actor (image bytes as data URLs), or an error."""
    if item.error is not None:
        return None, item.error
    content = dict(item.content)
    if "images" in content:
        import base64

        content["images"] = [
            "data:;base64," + base64.b64encode(im).decode("ascii") if isinstance(im, bytes) else im
            for im in content["images"]
        ]
    try:
        return json.dumps(content, ensure_ascii=False), None
    except (TypeError, ValueError, RecursionError) as exc:
        return None, f"{item.file} row {item.row}: cannot serialize the row ({type(exc).__name__})"


def _make_reader(plan: FilePlan, rc: ResolvedColumns, multi: bool, done_ref: Any, block_rows: int,
                 image_root: str | None) -> Callable[[], Iterator[Any]]:
    def read() -> Iterator[Any]:
        import numpy as np
        import pyarrow as pa
        import ray

        done = ray.get(done_ref) if done_ref is not None else np.zeros(0, dtype=np.int64)
        path = Path(plan.path)
        root = Path(image_root) if image_root else path.parent
        id_name = plan.name if multi else None
        cols: dict[str, list[Any]] = {c: [] for c in _INPUT_COLUMNS}
        schema = pa.schema([("id", pa.string()), ("file", pa.string()), ("row", pa.int64()),
                            ("content", pa.string()), ("error", pa.string())])

        def flush() -> Any:
            table = pa.table({c: cols[c] for c in _INPUT_COLUMNS}, schema=schema)
            for c in cols.values():
                c.clear()
            return table

        for i, raw in enumerate(_iter_table_rows(path)):
            if plan.max_rows is not None and i >= plan.max_rows:
                break
            item_id = row_id(raw, rc, id_name, i)
            if i in plan.renames:
                item_id = renamed_id(item_id, id_name, i)
            h = id_hash(item_id)
            k = int(np.searchsorted(done, h))
            if k < len(done) and done[k] == h:
                continue  # judged by an earlier run
            item = make_item(raw, i, item_id, rc, file=plan.name, root=root)
            content, error = _content_json(item)
            for c, v in zip(_INPUT_COLUMNS, (item.id, item.file, item.row, content, error), strict=True):
                cols[c].append(v)
            if len(cols["id"]) >= block_rows:
                yield flush()
        if cols["id"]:
            yield flush()

    return read


# ============================================================================ actors
@dataclass(frozen=True)
class WorkerConfig:
    """What each actor needs to build its guard (sent once per actor)."""

    judge: str | Callable[[], Any] = "auto"
    taxonomy: Any = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    policy: Policy | None = None
    keep_raw: bool = False
    fail_mode: str | None = None  # an explicit fail mode wins over the policy file's


def judge_specs(judge: str | Callable[[], Any]) -> list[str | Callable[[], Any]]:
    """Several OpenAI-compatible endpoints are given comma-separated (``http://a:8000/v1,http://b:8000/v1``);
    any other spec is one judge."""
    if isinstance(judge, str) and "," in judge:
        parts = [p.strip() for p in judge.split(",") if p.strip()]
        if parts and all(p.lower().startswith(("http://", "https://", "openai:", "endpoint:")) for p in parts):
            return list(parts)
    return [judge]


def build_worker_guard(config: WorkerConfig, spec: str | Callable[[], Any] | None = None) -> Any:
    judge = config.judge if spec is None else spec
    if isinstance(judge, str):
        guard = guard_from_spec(judge, taxonomy=config.taxonomy, **config.settings)
    else:
        guard = as_guard(judge(), taxonomy=config.taxonomy)
    if config.fail_mode and config.policy is None:
        guard.policy = guard.policy.model_copy(update={"fail_mode": config.fail_mode})
    return guard


class GuardWorker:
    """The Ray Data UDF: one ``ProGuard`` per actor (one per endpoint when several are given; the
    actor's batches go to them in turn), one ``acheck_batch`` per batch of rows."""

    def __init__(self, config: WorkerConfig) -> None:
        self.guards = [build_worker_guard(config, spec) for spec in judge_specs(config.judge)]
        self.policy = config.policy
        self.keep_raw = config.keep_raw
        self._turn = 0

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        from ._portal import run_sync

        items = []
        for r in batch.to_pylist():
            content, error = r["content"], r["error"]
            if error is None:
                try:
                    content = json.loads(content)
                except (TypeError, ValueError, RecursionError) as exc:
                    content, error = None, f"row {r['row']}: unreadable content ({type(exc).__name__})"
            items.append(ScanItem(r["id"], int(r["row"]), content, r["file"] or "", error))
        guard = self.guards[self._turn % len(self.guards)]
        self._turn += 1
        rows = run_sync(ajudge_items(guard, items, policy=self.policy, keep_raw=self.keep_raw))
        return pa.Table.from_pylist([normalize_output_row(r) for r in rows], schema=output_schema())

    def __del__(self) -> None:
        for guard in getattr(self, "guards", ()):
            try:
                guard.close()
            except Exception:  # an actor going away must not raise from a finalizer
                pass


# ============================================================================ engine
def _wants_gpu(judge: str | Callable[[], Any], settings: Mapping[str, Any]) -> bool:
    if not isinstance(judge, str):
        return False
    spec = judge.strip().lower()
    if spec.startswith("vllm:"):
        return True
    if spec in ("", "auto", "env", "default"):
        return settings.get("backend") == "vllm"
    return False


def _resolved_settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """ProGuardSettings read on the driver (its ``PROGUARD_*`` variables), so every actor on every
    node uses the same options whatever its own environment."""
    from pydantic import ValidationError

    from .settings import ProGuardSettings

    try:
        s = ProGuardSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid ProGuard settings (arguments or PROGUARD_* variables): {exc}") from exc
    return {k: v for k, v in s.model_dump().items() if v is not None}


def scan_ray(
    input: str | Path,
    output: str | Path,
    *,
    judge: str | Callable[[], Any] = "auto",
    taxonomy: Any = None,
    policy: Policy | None = None,
    columns: ScanColumns | None = None,
    address: str | None = None,
    num_workers: int | None = None,
    batch_size: int = 64,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    keep_raw: bool = False,
    retry_errors: bool = False,
    limit: int | None = None,
    image_root: str | Path | None = None,
    rows_per_file: int | None = None,
    progress: bool = True,
    ray_init_args: Mapping[str, Any] | None = None,
    **settings: Any,
) -> ScanSummary:
    """Judge every row of ``input`` not yet in the ``output`` folder on a Ray cluster.

    ``judge`` is a judge spec (as ``--judge``: ``lite``, ``http://HOST:8000/v1``, ``vllm:PATH``,
    ``py:MODULE:ATTR`` ...) or a picklable no-argument callable returning a ProGuard, Judge or
    Backend; it is built once in each actor. ``settings`` are ``ProGuardSettings`` fields
    (``model``, ``max_concurrency``, ``timeout``, ``fail_mode`` ...), read with the driver's
    ``PROGUARD_*`` variables. ``address``: the cluster to join (``auto``, ``ray://HOST:10001``;
    default: the one already connected, else ``RAY_ADDRESS``, else a local cluster started here).
    ``num_workers`` actors (default: one per CPU, or per GPU for in-process vLLM), each with
    ``num_cpus`` CPUs (default 1) and ``num_gpus`` GPUs (default 1 for vLLM, else 0).
    Returns the summary of the whole output folder.
    """
    ray = _ray()
    if batch_size < 1:
        raise ConfigurationError("batch_size must be at least 1")
    if num_workers is not None and num_workers < 1:
        raise ConfigurationError("num_workers must be at least 1")
    out = Path(output)
    source: ScanSource = resolve_input(input, exclude=out)
    if source.image_folder is not None:
        raise ConfigurationError(
            f"{input}: an image folder is scanned by the single-process engine; for the ray engine list the "
            "images in a table with an image column (paths or bytes)"
        )
    fmt = _output_format(out)
    resolved = _resolved_settings(settings)
    gpu = _wants_gpu(judge, resolved)
    worker_gpus = num_gpus if num_gpus is not None else (1.0 if gpu else 0.0)
    worker_cpus = num_cpus if num_cpus is not None else 1.0

    started_here = False
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reporting from a cluster we start
        ray.init(address=address, **dict(ray_init_args or {}))
        started_here = True
    try:
        res = ray.cluster_resources()
        if worker_gpus and res.get("GPU", 0.0) < worker_gpus:
            raise ConfigurationError(
                f"the judge needs GPU actors ({worker_gpus:g} GPU each) but the Ray cluster has "
                f"{res.get('GPU', 0.0):g} GPUs; join a cluster with GPUs (--address), or set --gpus-per-worker 0 "
                "to run it on CPU actors"
            )
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        ctx.print_on_execution_start = progress

        # ---- output folder and resumption
        done_ids = prepare_output(out, fmt, retry_errors=retry_errors)
        import numpy as np

        done = np.unique(np.asarray([id_hash(i) for i in done_ids], dtype=np.int64))

        # ---- planning: columns over every row of every file, then the id of every row
        files = [str(f.resolve()) for f in source.files]
        keys_task = ray.remote(num_cpus=0.5)(table_keys)
        rc = resolve_columns(merge_keys(ray.get([keys_task.remote(Path(f)) for f in files])), columns, source.spec)
        ids_task = ray.remote(num_cpus=0.5)(_file_ids)
        per_file = ray.get([ids_task.remote(f, n, rc, source.multi) for f, n in zip(files, source.names, strict=True)])
        renames = _duplicate_rows(per_file)
        if any(renames):  # the ids the duplicates get, to know which are already in the output
            ren_task = ray.remote(num_cpus=0.5)(_renamed_hashes)
            refs = {fi: ren_task.remote(files[fi], source.names[fi], rc, source.multi, frozenset(r))
                    for fi, r in enumerate(renames) if r}
            for fi, ref in refs.items():
                per_file[fi] = per_file[fi].copy()
                for row, h in ray.get(ref).items():
                    per_file[fi][row] = h
        plans: list[FilePlan] = []
        budget = limit
        in_scope = 0
        skipped = 0
        for f, n, h, ren in zip(files, source.names, per_file, renames, strict=True):
            take = len(h) if budget is None else max(0, min(len(h), budget))
            if budget is not None:
                budget -= take
            if take == 0:
                continue
            in_scope += take
            skipped += int(np.isin(h[:take], done).sum()) if len(done) else 0
            plans.append(FilePlan(f, n, frozenset(ren), take if take < len(h) else None))
        if skipped == in_scope:
            logger.info("scan: every row of %s is already in %s", input, out)
        else:
            if num_workers is None:
                per = (res.get("GPU", 0.0) / worker_gpus) if worker_gpus else (res.get("CPU", 1.0) / max(worker_cpus, 0.01))
                num_workers = max(1, int(per))
            config = WorkerConfig(judge=judge, taxonomy=taxonomy, settings=resolved, policy=policy, keep_raw=keep_raw,
                                  fail_mode=settings.get("fail_mode"))
            done_ref = ray.put(done)
            # read and write tasks take no CPU slot: the actors hold the CPUs, and a read task
            # waiting for a CPU that every actor holds would stall the stream
            # Ray Data coalesces a read task's output into large blocks, and an actor judges a
            # whole block per task: ask for batch-sized blocks (each read task's output is split)
            # so the work spreads over every actor and part files are written as the scan runs
            n_blocks = max(len(plans), min(-(-(in_scope - skipped) // batch_size), 100_000))
            ds = ray.data.read_datasource(
                _datasource_class()(plans, rc, source.multi, done_ref, batch_size,
                                    str(image_root) if image_root else None),
                num_cpus=0, override_num_blocks=n_blocks,
            )
            ds = ds.map_batches(
                GuardWorker, fn_constructor_kwargs={"config": config}, batch_size=batch_size,
                batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=num_workers),
                num_cpus=worker_cpus, num_gpus=worker_gpus,
            )  # Ray Data's actor pool restarts dead actors and retries their batches (max_restarts=-1,
            # max_task_retries=-1 are its defaults): a killed worker loses no rows
            min_rows = rows_per_file or max(batch_size, 1024)
            ds.write_datasink(parts_datasink(str(out.resolve()), fmt, min_rows), ray_remote_args={"num_cpus": 0})
        dropped = dedupe_output(out, fmt)
        if dropped:
            logger.warning("scan: dropped %d duplicate rows from %s", dropped, out)
        summary = summarize_output(out, fmt)
        summary.skipped_done = skipped
        summary.judged_now = in_scope - skipped
        return summary
    finally:
        if started_here:
            ray.shutdown()


__all__ = [
    "OUTPUT_COLUMNS",
    "FilePlan",
    "GuardWorker",
    "WorkerConfig",
    "build_worker_guard",
    "dedupe_output",
    "id_hash",
    "judge_specs",
    "part_name",
    "parts_datasink",
    "prepare_output",
    "read_output",
    "scan_ray",
    "summarize_output",
]
