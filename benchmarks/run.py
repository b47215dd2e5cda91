"""The one benchmark runner: every benchmark in one run, one table of ratios, the machine.

Each benchmark module exposes ``run(quick=False) -> dict``; this runner imports them lazily,
one after the other, in this process (a module that is missing or fails is reported as
"not available" with the reason, and the others still run). It prints a table of headline
figures (each a ratio against a baseline measured in the same run), the machine description
(CPU model, cores, RAM, load average, Python, torch and library versions, GPU) and the command
line, and saves everything under ``benchmarks/results/`` as JSON (full results) and Markdown
(the table).

    python benchmarks/run.py                  # all benchmarks, full size
    python benchmarks/run.py --quick          # smoke-sized runs
    python benchmarks/run.py --only client,lite
    python benchmarks/run.py --list
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

# name -> (module, what it compares). Light ones first: the heavy ones load torch models.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "client": ("bench_client", "concurrent checks vs AsyncOpenAI and httpx.AsyncClient at the same concurrency, "
                               "and vs the released script's sequential loop (same endpoint)"),
    "langchain_overhead": ("bench_langchain_overhead", "LangChain rail vs a hand-written guard call"),
    "sync_api": ("bench_sync_api", "sync guard.check vs await guard.acheck (scripted in-process backend)"),
    "lite": ("bench_lite", "lite judge vs its bare ONNX forward and a torch forward; cascade generated items and recall"),
    "rewards": ("bench_rewards", "reward throughput vs a per-pair similarity service"),
    "local": ("bench_local", "local backend prefix reuse + batching vs plain generate, per check and batched "
                             "(24 and 160 new tokens)"),
    "llamaindex_guardrails": ("bench_llamaindex_guardrails",
                              "LlamaIndex node screening (batched vs per node) and adapter overheads"),
    "server": ("bench_server", "guard server (/v1/moderations) latency and overhead vs the guard in-process"),
    "scan_ray": ("bench_scan_ray", "scan --engine ray with 2 workers vs the single-process scan (same 20,000 rows)"),
}

Row = dict[str, Any]  # figure, value, unit, baseline, ratio, note


# ------------------------------------------------------------------ headline extraction
def _get(d: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _row(figure: str, value: Any, unit: str = "", baseline: Any = None, ratio: Any = None, note: str = "") -> Row:
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "note": note}


def _client_rows(r: dict[str, Any]) -> list[Row]:
    modes = r.get("modes", {})
    base = _get(modes, "sequential_released.checks_per_s")
    client = _get(modes, "sequential_released.client") or "sequential"
    rows = []
    m = modes.get("sequential_proguard")
    if m:
        rows.append(_row("ProGuard.check, one at a time", m["checks_per_s"], "checks/s", base, m["ratio"],
                         f"context; baseline: released script's loop ({client}), one at a time; "
                         f"{r.get('endpoint', '')}"))
    labels = {"openai": "AsyncOpenAI", "httpx": "httpx.AsyncClient (keep-alive)"}
    for conc in (16, 64):
        ours = modes.get(f"concurrent_c{conc}")
        if not ours:
            continue
        for other in ("openai", "httpx"):
            b = modes.get(f"{other}_c{conc}")
            if b and ours.get(f"ratio_vs_{other}") is not None:
                rows.append(_row(
                    f"ProGuard.acheck vs {labels[other]}, {conc} in flight", ours["checks_per_s"], "checks/s",
                    b["checks_per_s"], ours[f"ratio_vs_{other}"],
                    f"same prompt, body and parser; client CPU {ours.get('client_cpu_ms_per_check')} vs "
                    f"{b.get('client_cpu_ms_per_check')} ms/check; median of {b.get('rounds')} alternating rounds"))
        rows.append(_row(f"ProGuard.acheck, {conc} in flight, vs the sequential loop", ours["checks_per_s"],
                         "checks/s", base, ours["ratio"], "context: measures concurrency"))
    oh = r.get("overhead_no_network") or {}
    ours_us = oh.get("proguard_cpu_us_per_check")
    for other in ("openai", "httpx"):
        if ours_us and oh.get(f"{other}_cpu_us_per_check"):
            name = {"openai": "AsyncOpenAI", "httpx": "httpx.AsyncClient"}[other]
            rows.append(_row(f"client CPU per check with no network: ProGuard.acheck vs {name}", ours_us,
                             "us", oh[f"{other}_cpu_us_per_check"], oh.get(f"cpu_ratio_{other}_over_proguard"),
                             "in-memory transport, one check at a time; the guard also normalizes, caches, applies "
                             "the policy; ratio = baseline CPU / ours"))
    m = modes.get("batch_c64")
    if m:
        rows.append(_row("ProGuard.acheck_batch, 64 in flight, vs the sequential loop", m["checks_per_s"],
                         "checks/s", base, m["ratio"], "context: measures concurrency"))
    load = r.get("load") or {}
    if load:
        rows.append(_row(
            f"load: {load.get('checks')} checks, {load.get('concurrency')} in flight", load.get("checks_per_s"),
            "checks/s", None, None,
            f"decisions {load.get('decisions')}/{load.get('checks')}, matched {load.get('matched')}, "
            f"errors {load.get('errors')}; peak RSS {load.get('rss_peak_mb')} MB "
            f"(+{load.get('rss_growth_mb')} MB during the run)"))
    return rows


def _sync_api_rows(r: dict[str, Any]) -> list[Row]:
    modes = r.get("modes") or {}
    base = _get(modes, "acheck.cpu_us")
    rows = []
    for name, label in (("check", "guard.check (in-process judge, no loop running)"),
                        ("check_via_portal", "guard.check through the background loop (before; HTTP judges)"),
                        ("check_in_loop", "guard.check called inside a running loop")):
        m = modes.get(name)
        if m:
            rows.append(_row(f"sync API: {label}, CPU per call", m["cpu_us"], "us", base, m.get("ratio_cpu"),
                             f"vs await acheck; added {m.get('added_cpu_us')} us CPU, {m.get('added_wall_us')} us "
                             f"wall; {r.get('backend', '')}; ratio = sync/async"))
    return rows


def _langchain_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for mode in ("sync", "async"):
        s = r.get(mode)
        if isinstance(s, dict) and "ratio" in s:
            rows.append(_row(f"LangChain rail, {mode}: time per guarded call", s.get("rail_us"), "us",
                             s.get("baseline_us"), s.get("ratio"),
                             f"added {s.get('added_us')} us/call; {r.get('backend', '')}; ratio = rail/baseline"))
    return rows


def _local_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    model = r.get("model", "")
    for run in (r, r.get("long")):
        if not isinstance(run, dict) or "modes" not in run:
            continue
        modes, tokens = run["modes"], run.get("max_new_tokens")
        single, batched = modes.get("generate_single") or {}, modes.get("generate_batched") or {}
        ours = modes.get("ours")
        if not ours:
            continue
        same = "outputs identical" if run.get("identical_outputs") else f"OUTPUTS DIFFER: {run.get('different_modes')}"
        rows.append(_row(f"local backend, {tokens} new tokens: ours vs one generate per check",
                         ours.get("checks_per_s"), "checks/s", single.get("checks_per_s"), ours.get("ratio_wall"),
                         f"CPU-time ratio {_fmt(ours.get('ratio_cpu'))}; {same}; {model}"))
        rows.append(_row(f"local backend, {tokens} new tokens: ours vs batched generate (batch {r.get('batch_size')})",
                         ours.get("checks_per_s"), "checks/s", batched.get("checks_per_s"),
                         ours.get("ratio_wall_vs_batched"),
                         f"CPU-time ratio {_fmt(ours.get('ratio_cpu_vs_batched'))}; padded batches through generate "
                         f"run {_fmt(batched.get('ratio_wall'))}x one at a time on CPU (masked attention)"))
        whole = modes.get("ours_whole_prompt_tokenizing")
        if whole:
            rows.append(_row(f"local backend, {tokens} new tokens: ours vs ours tokenizing whole prompts (before)",
                             ours.get("checks_per_s"), "checks/s", whole.get("checks_per_s"),
                             ours.get("ratio_wall_vs_whole_prompt_tokenizing"),
                             f"CPU-time ratio {_fmt(ours.get('ratio_cpu_vs_whole_prompt_tokenizing'))}; the system "
                             "turn's token ids cached, only the conversation tokenized"))
        for name, label in (("reuse_only", "prefix reuse, batches of one"), ("ours_cold", "ours, first use")):
            m = modes.get(name)
            if m and run is r:  # context rows for the short-answer run only
                rows.append(_row(f"local backend, {tokens} new tokens: {label} vs one generate per check",
                                 m.get("checks_per_s"), "checks/s", single.get("checks_per_s"), m.get("ratio_wall"),
                                 f"CPU-time ratio {_fmt(m.get('ratio_cpu'))}"))
    tok = r.get("tokenize_ms_per_check") or {}
    for suffix, how in ((f"_batch{r.get('batch_size')}", f"in batches of {r.get('batch_size')}"), ("", "one at a time")):
        conv, whole = tok.get("conversation_only" + suffix), tok.get("whole_prompt" + suffix)
        if not (conv and whole):
            continue
        ours_ms = r.get("ours_ms_per_check_cpu")
        before = ours_ms + whole - conv if ours_ms and suffix else None
        share = f" (then {100 * whole / before:.0f}% of a check's CPU in ours, {r.get('max_new_tokens')} new tokens)" \
            if before else ""
        rows.append(_row(f"local backend: tokenizing a check {how} (conversation only, system ids cached)",
                         conv, "ms CPU", whole, round(whole / conv, 1),
                         f"baseline: the whole prompt, as every check did before{share}; ratio = speedup"))
    return rows


def _rewards_rows(r: dict[str, Any]) -> list[Row]:
    modes = r.get("modes") or {}
    base = _get(modes, "http_new_connection.samples_per_s")
    if not modes or base is None:
        return []
    labels = {
        "http_keepalive": "reward scoring: one HTTP request per pair, kept-alive connection",
        "batched_no_cache": "reward scoring: one encode call per batch, no dedup or cache",
        "ours_cold": "reward scoring: training.rewards, empty cache (first step)",
        "ours_warm": "reward scoring: training.rewards, synonym banks cached (later steps)",
    }
    rows = []
    for name, label in labels.items():
        m = modes.get(name)
        if not m:
            continue
        what = (f"{m['http_requests']} requests for {m['samples']} samples" if "http_requests" in m
                else f"{m.get('phrases_encoded')} phrases in {m.get('encode_calls')} encode call(s), {m['samples']} samples")
        note = (f"baseline: one request per pair, new connection each ({modes['http_new_connection']['samples']} "
                f"samples); {what}" if name == "http_keepalive" else what)
        if name == "ours_cold":
            note += f"; max reward difference across modes {r.get('max_reward_difference')}"
        rows.append(_row(label, m["samples_per_s"], "samples/s", base, m.get("ratio"), note))
    return rows


def _lite_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    lite = r.get("lite") or {}
    if lite:
        note = (f"same {lite.get('checks')} short texts ({lite.get('mean_tokens_per_window')} tokens/window); "
                f"overhead {lite.get('overhead_us_per_check')} us/check over the bare forward; "
                f"{r.get('weights')} ONNX, {r.get('cpu_count')} CPUs")
        rows.append(_row("lite judge: ProGuard.check_batch vs bare onnxruntime forward",
                         lite.get("engine_checks_per_s"), "checks/s", lite.get("onnx_forward_per_s"),
                         lite.get("engine_over_onnx_forward"), note + "; ratio = engine time / forward time"))
        if lite.get("torch_forward_per_s"):
            rows.append(_row("lite judge: ProGuard.check_batch vs torch forward of the same encoder",
                             lite.get("engine_checks_per_s"), "checks/s", lite.get("torch_forward_per_s"),
                             lite.get("engine_speedup_vs_torch_forward"),
                             "torch float32 MiniLM forward only, same window batches; ratio = speedup"))
        lat = lite.get("single_check_latency_ms") or {}
        rows.append(_row("lite judge: single check latency (p50)", lat.get("p50"), "ms", None, None,
                         f"mean {lat.get('mean')} ms; model load {r.get('load_s')} s"))
    cas = r.get("cascade") or {}
    if cas:
        gen = cas.get("generated_items") or {}
        rec = cas.get("unsafe_recall") or {}
        rows.append(_row("cascade vs generative-only: generated items", gen.get("cascade"), "items",
                         gen.get("generative_only"), cas.get("generated_items_ratio_cascade_over_generative"),
                         f"{cas.get('items')} items ({cas.get('unsafe')} unsafe); unsafe recall cascade "
                         f"{rec.get('cascade')} vs generative-only {rec.get('generative_only')} (lite alone "
                         f"{rec.get('lite_alone')})"))
        wall = cas.get("wall_s_under_assumed_cost") or {}
        rows.append(_row("cascade vs generative-only: wall time", wall.get("cascade"), "s", wall.get("generative_only"),
                         cas.get("wall_ratio_cascade_over_generative"),
                         f"ASSUMED {cas.get('assumed_cost_per_generated_item_ms')} ms per generated item "
                         "(scripted stand-in); wall time scales with that assumption"))
    return rows


def _llamaindex_guardrails_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    n = r.get("nodes") or {}
    if "speedup_batched_vs_naive" in n:
        rows.append(_row(f"LlamaIndex: screen {n.get('nodes')} retrieved nodes", n.get("batched_ms_per_retrieval"),
                         "ms", n.get("naive_ms_per_retrieval"), n.get("speedup_batched_vs_naive"),
                         f"one batched guard call vs one per node; {n.get('simulated_generation_ms')} ms simulated "
                         "generation; ratio = speedup"))
    q = r.get("query_engine") or {}
    if "ratio_adapter_vs_hand_written" in q:
        rows.append(_row("LlamaIndex query engine wrapper: time per query", q.get("adapter_us"), "us",
                         q.get("baseline_us"), q.get("ratio_adapter_vs_hand_written"),
                         f"added {q.get('added_us')} us/query vs the same checks by hand"))
    g = r.get("guardrails") or {}
    if "ratio_validator_alone_vs_direct" in g:
        rows.append(_row("Guardrails validator alone vs direct guard call", g.get("validator_alone_us"), "us",
                         g.get("baseline_us"), g.get("ratio_validator_alone_vs_direct"),
                         f"Guard.validate adds {g.get('added_us_guard_validate')} us (mostly Guardrails itself)"))
    return rows


def _server_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    d1, s1 = r.get("direct_c1") or {}, r.get("server_c1") or {}
    if d1 and s1:
        rows.append(_row("server, 1 in flight: p50 latency per request", s1.get("p50_ms"), "ms", d1.get("p50_ms"),
                         r.get("ratio_latency_p50_c1"),
                         f"baseline: ProGuard.acheck in-process, same endpoint; overhead p50 {r.get('overhead_ms_p50')} ms, "
                         f"p99 {s1.get('p99_ms')} ms vs {d1.get('p99_ms')} ms"))
    d64, s64 = r.get("direct_c64") or {}, r.get("server_c64") or {}
    if d64 and s64:
        rows.append(_row(f"server load: {s64.get('n')} requests, {r.get('concurrency')} in flight", s64.get("per_s"),
                         "requests/s", d64.get("per_s"), r.get("ratio_throughput_c64"),
                         f"answered {s64.get('answered')}/{s64.get('n')}, matched {s64.get('matched')}, errors "
                         f"{s64.get('errors')}; p50 {s64.get('p50_ms')} ms, p99 {s64.get('p99_ms')} ms "
                         f"(in-process: p50 {d64.get('p50_ms')} ms, p99 {d64.get('p99_ms')} ms)"))
    return rows


def _scan_ray_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for key, label in (("lite", "lite judge"), ("endpoint", "endpoint judge (50 ms fake server)")):
        m = r.get(key)
        if isinstance(m, dict) and "ratio_ray_over_single" in m:
            rows.append(_row(f"scan {m.get('rows')} rows, {label}: Ray, 2 workers",
                             _get(m, "ray_2_workers.rows_per_s"), "rows/s", _get(m, "single_process.rows_per_s"),
                             m["ratio_ray_over_single"],
                             f"baseline: single-process scan; end to end; same decisions {m.get('same_decisions')}; "
                             f"ray.init {r.get('ray_init_s')} s not included"))
    return rows


EXTRACTORS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "server": _server_rows,
    "scan_ray": _scan_ray_rows,
    "llamaindex_guardrails": _llamaindex_guardrails_rows,
    "client": _client_rows,
    "sync_api": _sync_api_rows,
    "langchain_overhead": _langchain_rows,
    "lite": _lite_rows,
    "local": _local_rows,
    "rewards": _rewards_rows,
}

_RATIO_WORDS = ("ratio", "speedup")


def _generic_rows(r: dict[str, Any], prefix: str = "") -> list[Row]:
    """Fallback: every numeric figure named like a ratio or a speedup, at any depth."""
    rows: list[Row] = []
    for key, value in r.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_generic_rows(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and any(w in key for w in _RATIO_WORDS):
            rows.append(_row(name, None, "", None, value))
    return rows


def headline_rows(name: str, result: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    extractor = EXTRACTORS.get(name)
    if extractor is not None:
        try:
            rows = extractor(result)
        except Exception:  # a changed result shape must not hide the figures
            rows = []
    return rows or _generic_rows(result)


# ------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git() -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                    timeout=10).stdout.strip())
        return {"commit": head or None, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def machine() -> dict[str, Any]:
    """What the figures were measured on (read without importing torch)."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "httpx": _version("httpx"),
        "langchain_core": _version("langchain-core"),
        "proguard_rails": _version("proguard-rails"),
    }
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        try:
            info["ram_gb"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        except (ValueError, OSError, AttributeError):
            info["ram_gb"] = None
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    if "torch" in sys.modules:  # only if a benchmark already imported it
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        try:
            info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception:
            info["gpu"] = None
    return info


# ------------------------------------------------------------------ running
def run_one(name: str, quick: bool) -> dict[str, Any]:
    module_name, what = BENCHMARKS[name]
    entry: dict[str, Any] = {"name": name, "module": module_name, "compares": what}
    start = time.perf_counter()
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, "run", None)
        if fn is None:
            raise AttributeError(f"{module_name} has no run(quick=False) function")
        result = fn(quick=quick)
        if not isinstance(result, dict):
            raise TypeError(f"{module_name}.run returned {type(result).__name__}, not a dict")
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        entry.update(status="not available", kind="missing", reason=f"module {missing!r} not found")
    except BaseException as exc:  # a failing benchmark must not take the others down
        if isinstance(exc, KeyboardInterrupt):
            raise
        entry.update(status="not available", kind="failed", reason=f"{type(exc).__name__}: {exc}",
                     traceback=traceback.format_exc(limit=8))
    else:
        entry.update(status="ok", result=result, headline=headline_rows(name, result))
    entry["seconds"] = round(time.perf_counter() - start, 1)
    return entry


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def table(entries: Iterable[dict[str, Any]]) -> list[list[str]]:
    rows = [["benchmark", "figure", "value", "unit", "baseline", "ratio", "note"]]
    for e in entries:
        if e["status"] != "ok":
            rows.append([e["name"], "not available", "-", "", "-", "-", e.get("reason", "")[:160]])
            continue
        for r in e["headline"] or [_row("(no headline figures; see JSON)", None)]:
            rows.append([e["name"], str(r["figure"]), _fmt(r["value"]), r["unit"], _fmt(r["baseline"]),
                         _fmt(r["ratio"]) + ("x" if r["ratio"] is not None else ""), r["note"]])
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [min(max(len(r[i]) for r in rows), 60 if i == 1 else 200) for i in range(len(rows[0]) - 1)]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[i][:widths[i]].ljust(widths[i]) if i in (0, 1, 3) else r[i].rjust(widths[i])
                 for i in range(len(widths))]
        lines.append("  ".join(cells) + "  " + r[-1])
        if k == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    return "\n".join(lines)


def render_markdown(rows: list[list[str]], meta: dict[str, Any]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = [f"# Benchmark results ({meta['started_utc']})", "", f"Command: `{meta['command']}`", ""]
    out += ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows[1:]]
    m = meta["machine"]
    out += ["", "## Machine", ""]
    out += [f"- {k}: {v}" for k, v in m.items()]
    out += ["", "Ratios compare each figure with a baseline measured in the same run on the same machine; "
            "see `benchmarks/README.md` for what each baseline is.", ""]
    return "\n".join(out)


def rerender(path: Path) -> int:
    """Recompute the headline rows of a saved run with the current extractors; rewrite its .md."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    for e in payload["benchmarks"]:
        if e.get("status") == "ok":
            e["headline"] = headline_rows(e["name"], e["result"])
    rows = table(payload["benchmarks"])
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    path.with_suffix(".md").write_text(render_markdown(rows, payload), encoding="utf-8")
    print(render_text(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs of every benchmark")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--out", default=str(RESULTS), help="results folder (default benchmarks/results)")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--rerender", metavar="JSON", help="rebuild the table of a saved run (no benchmark runs)")
    args = parser.parse_args(argv)
    if args.rerender:
        return rerender(Path(args.rerender))
    if args.list:
        for name, (module, what) in BENCHMARKS.items():
            print(f"{name:<22}{module:<29}{what}")
        return 0
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")

    # the benchmark modules sit next to this file; the package is importable from the repo root
    for p in (str(HERE), str(ROOT)):
        if p not in sys.path:
            sys.path.insert(0, p)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    started = _dt.datetime.now(_dt.timezone.utc)
    script = os.path.relpath(__file__, os.getcwd()) if argv is not None else sys.argv[0]
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, script, *given])
    meta: dict[str, Any] = {"started_utc": started.strftime("%Y-%m-%d %H:%M:%S UTC"), "command": command,
                            "quick": args.quick, "git": _git()}
    load_before = machine().get("load_average")
    entries = []
    for name in names:
        print(f"[run] {name} ...", file=sys.stderr, flush=True)
        entry = run_one(name, args.quick)
        print(f"[run] {name}: {entry['status']} in {entry['seconds']} s", file=sys.stderr, flush=True)
        entries.append(entry)
    meta["machine"] = {**machine(), "load_average_before": load_before}
    meta["seconds"] = round((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(), 1)

    rows = table(entries)
    print()
    print(render_text(rows))
    print()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in meta["machine"].items()))
    print(f"command: {command}")
    if not args.no_save:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if args.quick else "")
        payload = {**meta, "benchmarks": entries}
        (out / f"{stamp}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
        md = render_markdown(rows, meta)
        (out / f"{stamp}.md").write_text(md, encoding="utf-8")
        (out / ("latest-quick.md" if args.quick else "latest.md")).write_text(md, encoding="utf-8")
        print(f"saved: {out / (stamp + '.json')} and .md")
    return 1 if any(e.get("kind") == "failed" for e in entries) else 0  # a missing module is not a failure


if __name__ == "__main__":
    sys.exit(main())
