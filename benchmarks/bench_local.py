"""Local transformers backend: prefix reuse + batching versus plain ``generate``, per check and batched.

Workload: ``n`` text checks rendered with the released templates and the default policy (the
released-size system prompt: ~6k characters, ~3.7k tokens with the tiny tokenizer, ~1.5k with
Qwen's), generated greedily on the tiny offline Qwen2.5-VL from ``proguard_rails.testing``, on
CPU, in one process, on one shared model; once with short answers (24 new tokens) and once with
long ones (160 new tokens, a ProGuard answer with its reasoning), where decoding dominates.

The baselines are written with plain transformers, as a user would (``apply_chat_template``,
the processor, ``model.generate`` greedy with the stop string, decode), on the same model object:

    generate_single     one ``model.generate`` per check
    generate_batched    ``model.generate`` on left-padded batches of ``batch_size`` (16), the same
                        batch size as ours. On CPU its padded batches take the masked attention
                        path and run slower than one at a time; on a GPU batching is what pays,
                        which makes it the baseline that matters there
    reuse_only          ours with batches of one: the system turn's KV cache (and token ids) reused
    ours                prefix reuse + batches of 16 (the default)
    ours_whole_prompt_tokenizing
                        ours as it was before the system turn's token ids were cached: each check
                        tokenizes its whole prompt (system turn included) on the worker thread

``ours_cold`` includes building the system turn's cache (once per process and policy); ``ours``
is the steady state. Each mode is timed as wall time and as process CPU time (all threads;
steadier on a loaded machine); the two baselines, ours and ours_whole_prompt_tokenizing alternate
over three rounds (two for the long answers, one with ``--quick``), in a rotating order, and the
medians are compared; ``ratio_*`` are baseline / mode, all from this one run. Outputs of all modes are compared token for token
(``identical_outputs``). ``tokenize_ms_per_check`` compares tokenizing whole prompts (what
every check paid before the system turn's ids were cached) with tokenizing the conversation parts
only (what the reuse path does now).

Memory: a fresh child process builds a larger random checkpoint (the tiny one with a 512-wide,
4-layer text model, ~52 MB in float32, so a copy of the weights is visible), records its RSS and peak RSS
(VmHWM) before and after building ten ``ProGuard`` guards on that path (one shared model), and,
for contrast, after ten independent loads of the same checkpoint (what a model per guard costs).

    python benchmarks/bench_local.py            # 24 checks, 24 and 160 new tokens
    python benchmarks/bench_local.py --quick    # 8 checks
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TARGET_RATIO = 3.0
_TOPICS = (
    "How do I bake sourdough bread at home?",
    "Write a short poem about the sea at night.",
    "What is the capital of Australia and why was it chosen?",
    "Explain how vaccines train the immune system.",
    "Give me three tips for a job interview.",
    "How can I get into my neighbour's wifi without the password?",
    "Summarise the plot of Hamlet in two sentences.",
    "What household chemicals should never be mixed?",
)


def _requests(n: int) -> list[Any]:
    from proguard_rails.inputs import build_request

    reqs = []
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        user = f"{topic} (question {i})" + " Please be detailed." * (i % 4)
        agent = None if i % 3 == 0 else f"Here is a helpful answer to question {i}. " * (1 + i % 5)
        reqs.append(build_request(user, agent))
    return reqs


def _timed(fn: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _texts(results: list[Any]) -> list[str]:
    for r in results:
        if isinstance(r, BaseException):
            raise RuntimeError(f"generation failed: {r!r}")
    return [r.text for r in results]


def _plain_generate(model: Any, processor: Any, prompts: list[Any], max_new_tokens: int, batch: int) -> list[str]:
    """The baseline: what a user writes with transformers alone (greedy, stop string, left padding)."""
    import torch

    tok = processor.tokenizer
    tok.padding_side = "left"
    eos = model.generation_config.eos_token_id
    outs: list[str] = []
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        texts = [processor.apply_chat_template(
            [{"role": "system", "content": p.system},
             {"role": "user", "content": [{"type": "text", "text": p.user_text}]}],
            tokenize=False, add_generation_prompt=True) for p in chunk]
        enc = processor(text=texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            seqs = model.generate(**enc, do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None,
                                  repetition_penalty=1.0, max_new_tokens=max_new_tokens, eos_token_id=eos,
                                  pad_token_id=tok.pad_token_id, stop_strings=["</answer>"], tokenizer=tok)
        for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
            if tok.pad_token_id in row:  # rows that stopped early are padded to the longest
                row = row[:row.index(tok.pad_token_id)]
            text = tok.decode(row, skip_special_tokens=True)
            cut = text.find("</answer>")
            outs.append(text[:cut + len("</answer>")] if cut >= 0 else text)
    return outs


def _tokenize_cost(shared: Any, prompts: list[Any], params: Any, batch_size: int, reps: int) -> dict[str, float]:
    """CPU ms per check (all threads) to tokenize whole prompts vs the conversation parts after the
    cached system turn, one check at a time and in batches of ``batch_size`` as the worker does."""
    prefix = shared._prefix_for(prompts[0].system)
    if prefix is None or shared._encode_after_prefix(prompts[:1], params, prefix) is None:
        return {}
    out = {}
    for size in (1, batch_size):
        chunks = [prompts[i:i + size] for i in range(0, len(prompts), size)]
        suffix = "" if size == 1 else f"_batch{size}"
        for name, fn in (("whole_prompt", lambda c: shared._encode(c, params)),
                         ("conversation_only", lambda c: shared._encode_after_prefix(c, params, prefix))):
            cpu = time.process_time()
            for _ in range(reps):
                for chunk in chunks:
                    fn(chunk)
            out[name + suffix] = round((time.process_time() - cpu) / (reps * len(prompts)) * 1000, 3)
    return out


def _throughput(path: str, n: int, max_new_tokens: int, batch_size: int, rounds: int) -> dict[str, Any]:
    from proguard_rails.backends.transformers_local import TransformersBackend
    from proguard_rails.protocol import render

    prompts = [render(r) for r in _requests(n)]
    ours = TransformersBackend(path, max_new_tokens=max_new_tokens, prefix_cache=True, batch_size=batch_size)
    reuse_only = TransformersBackend(path, max_new_tokens=max_new_tokens, prefix_cache=True, batch_size=1)
    shared = ours.shared
    assert reuse_only.shared is shared
    model, processor = shared.model, shared.processor
    # Warm-up outside the timings: first-call allocations, lazy imports (prefix store emptied after).
    _plain_generate(model, processor, prompts[:2], 2, 2)
    _texts(ours.generate_batch(prompts[:1]))
    shared._prefixes.clear()

    results: dict[str, Any] = {}
    outputs: dict[str, list[str]] = {}
    before = dict(shared.stats)
    out, wall, cpu = _timed(lambda: ours.generate_batch(prompts))
    outputs["ours_cold"] = _texts(out)
    results["ours_cold"] = {"wall_s": wall, "cpu_s": cpu,
                            "prefix_builds": shared.stats["prefix_builds"] - before["prefix_builds"]}
    # The baselines and ours alternate for `rounds` rounds (median of each, rotating the order), so
    # that a load change on a shared machine hits all of them; reuse_only is informative and runs once.
    prefix = shared._prefix_for(prompts[0].system)

    def whole_prompt_tokenizing() -> list[str]:
        """Ours as it was before the system turn's ids were cached: every check tokenizes its whole prompt."""
        boundary, prefix.boundary = prefix.boundary, None
        try:
            return _texts(ours.generate_batch(prompts))
        finally:
            prefix.boundary = boundary

    calls: dict[str, Any] = {
        "generate_single": lambda: _plain_generate(model, processor, prompts, max_new_tokens, 1),
        "generate_batched": lambda: _plain_generate(model, processor, prompts, max_new_tokens, batch_size),
        "ours": lambda: _texts(ours.generate_batch(prompts)),
        "ours_whole_prompt_tokenizing": whole_prompt_tokenizing,
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            outputs[name], wall, cpu = _timed(calls[name])
            samples[name].append((wall, cpu))
    for name, vals in samples.items():
        results[name] = {"wall_s": statistics.median(v[0] for v in vals),
                         "cpu_s": statistics.median(v[1] for v in vals), "rounds": len(vals)}
    out, wall, cpu = _timed(lambda: [reuse_only.generate_batch([p])[0] for p in prompts])
    outputs["reuse_only"] = _texts(out)
    results["reuse_only"] = {"wall_s": wall, "cpu_s": cpu}
    single, batched = results["generate_single"], results["generate_batched"]
    whole = results["ours_whole_prompt_tokenizing"]
    results["ours"]["ratio_cpu_vs_whole_prompt_tokenizing"] = whole["cpu_s"] / results["ours"]["cpu_s"]
    results["ours"]["ratio_wall_vs_whole_prompt_tokenizing"] = whole["wall_s"] / results["ours"]["wall_s"]
    for r in results.values():
        r["checks_per_s"] = n / r["wall_s"]
        r["ratio_wall"] = single["wall_s"] / r["wall_s"]
        r["ratio_cpu"] = single["cpu_s"] / r["cpu_s"]
        r["ratio_wall_vs_batched"] = batched["wall_s"] / r["wall_s"]
        r["ratio_cpu_vs_batched"] = batched["cpu_s"] / r["cpu_s"]
    gen = ours.generate_batch(prompts[:1])[0]
    tokenize = _tokenize_cost(shared, prompts, ours.params, batch_size, 1 if n > 16 else 2)
    for b in (ours, reuse_only):
        b.close()
    reference = outputs["generate_single"]
    return {
        "checks": n,
        "max_new_tokens": max_new_tokens,
        "modes": results,
        "identical_outputs": all(o == reference for o in outputs.values()),
        "different_modes": sorted(k for k, o in outputs.items() if o != reference),
        "completion_tokens_per_check": gen.usage["completion_tokens"],
        "prompt_tokens_per_check": gen.usage["prompt_tokens"],
        "system_prefix_tokens": gen.usage["cached_tokens"],
        "tokenize_ms_per_check": tokenize,
        "ours_ms_per_check_cpu": round(results["ours"]["cpu_s"] / n * 1000, 2),
    }


def _build_memory_checkpoint(tiny: str, dst: str) -> str:
    """The tiny checkpoint with a wider, deeper text model (random weights, bf16 on disk, ~52 MB as float32), so
    that a second copy of the weights would be plainly visible in the process's RSS."""
    import shutil

    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    shutil.copytree(tiny, dst, ignore=shutil.ignore_patterns("model.safetensors", "config.json"))
    config = AutoConfig.from_pretrained(tiny)
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = 512, 1536, 4
    text.num_attention_heads, text.num_key_value_heads = 8, 4
    text.layer_types = ["full_attention"] * 4
    rope = dict(getattr(text, "rope_parameters", None) or {})
    rope["mrope_section"] = [8, 12, 12]  # head_dim / 2 = 512 / 8 / 2
    text.rope_parameters = rope
    config.vision_config.out_hidden_size = 512
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        # Stored in bf16 like the released checkpoints; loading it as float32 on CPU converts, so
        # each load really holds its own copy (a float32 file would be memory-mapped, not copied).
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(dst, safe_serialization=True)
    return dst


def _vm_hwm_mb() -> float | None:
    """Peak RSS of this process image (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _memory_child(tiny: str, path: str, guards: int) -> dict[str, Any]:
    """Runs in a fresh process: RSS before/after ten guards on one path, then ten private loads."""
    import gc

    import psutil
    import torch

    torch.set_num_threads(1)
    from proguard_rails import ProGuard
    from proguard_rails.backends.transformers_local import SharedModel, TransformersBackend

    proc = psutil.Process()

    def rss_mb() -> float:
        gc.collect()
        return proc.memory_info().rss / 2**20

    # Import and initialise everything a load touches (then free that model), so that the baseline
    # is the library alone and the first guard's growth is the model.
    warm = TransformersBackend(tiny, attn_implementation="eager")
    warm.close()
    del warm
    start = rss_mb()
    hwm_start = _vm_hwm_mb()
    made = [ProGuard(model_path=path, backend="transformers", max_tokens=16)]
    after_first = rss_mb()
    weights_mb = sum(p.numel() * p.element_size() for p in made[0].judge.backend.model.parameters()) / 2**20
    made += [ProGuard(model_path=path, backend="transformers", max_tokens=16) for _ in range(guards - 1)]
    after_all = rss_mb()
    hwm_all = _vm_hwm_mb()
    shared = len({id(g.judge.backend.model) for g in made}) == 1
    # Contrast: what a model per guard would cost (private loads, bypassing the registry).
    private = [SharedModel(os.path.realpath(path), "cpu", "float32", None) for _ in range(guards)]
    after_private = rss_mb()
    for m in private:
        m.close()
    for g in made:
        g.close()
    return {
        "guards": guards,
        "weights_mb": weights_mb,
        "rss_start_mb": start,
        "rss_growth_first_guard_mb": after_first - start,
        "rss_growth_next_guards_mb": after_all - after_first,
        "rss_growth_per_extra_guard_mb": (after_all - after_first) / max(1, guards - 1),
        "peak_rss_mb_before_guards": hwm_start,
        "peak_rss_mb_after_guards": hwm_all,
        "one_model_object": shared,
        "rss_growth_private_loads_mb": after_private - after_all,
    }


def _memory(tiny: str, guards: int = 10) -> dict[str, Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # Built here, not in the child, so that the child's allocator holds no freed model memory
        # that the first guard could reuse.
        path = _build_memory_checkpoint(tiny, os.path.join(tmp, "memory-model"))
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--memory-child", tiny, path, "--guards", str(guards)],
            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": _repo_root()},
        )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _repo_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    extra = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + extra if extra else "")


def run(quick: bool = False, *, threads: int = 1, max_new_tokens: int = 24, long_new_tokens: int | None = 160,
        batch_size: int = 16) -> dict[str, Any]:
    """Throughput (ratios from one run) with short and long answers, and memory figures; ``quick``
    runs 8 checks instead of 24. ``long_new_tokens=None`` skips the long-answer run.

    ``threads``: torch intra-op threads during the run (restored after). One by default: the
    tiny model gains nothing from more, and on a shared machine thread barriers add noise.
    """
    import torch

    from proguard_rails.testing import tiny_model_path

    path = str(tiny_model_path())
    n = 8 if quick else 24
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        throughput = _throughput(path, n, max_new_tokens, batch_size, 1 if quick else 3)
        long = _throughput(path, n, long_new_tokens, batch_size, 1 if quick else 2) if long_new_tokens else None
    finally:
        torch.set_num_threads(before)
    memory = _memory(path)
    ours = throughput["modes"]["ours"]
    return {
        "benchmark": "local transformers backend: prefix reuse + batching vs plain generate (per check and batched)",
        "model": "tiny random Qwen2.5-VL (proguard_rails.testing), CPU float32",
        "batch_size": batch_size,
        "torch_threads": threads,
        **throughput,  # the short-answer run
        "ratio_wall": ours["ratio_wall"],
        "ratio_cpu": ours["ratio_cpu"],
        "ratio_wall_vs_batched": ours["ratio_wall_vs_batched"],
        "ratio_cpu_vs_batched": ours["ratio_cpu_vs_batched"],
        "ratio_wall_cold": throughput["modes"]["ours_cold"]["ratio_wall"],
        "long": long,
        "target_ratio": TARGET_RATIO,
        "meets_target": ours["ratio_wall"] >= TARGET_RATIO and ours["ratio_cpu"] >= TARGET_RATIO,
        "memory": memory,
    }


def _print_run(r: dict[str, Any]) -> None:
    print(f"{r['checks']} checks, {r['prompt_tokens_per_check']} prompt tokens each ({r['system_prefix_tokens']} "
          f"system), {r['max_new_tokens']} new tokens")
    print(f"{'mode':<30}{'wall s':>9}{'cpu s':>9}{'checks/s':>10}{'x wall':>8}{'x cpu':>8}{'x wall b':>10}{'x cpu b':>9}")
    for name, m in r["modes"].items():
        print(f"{name:<30}{m['wall_s']:>9.2f}{m['cpu_s']:>9.2f}{m['checks_per_s']:>10.2f}{m['ratio_wall']:>8.1f}"
              f"{m['ratio_cpu']:>8.1f}{m['ratio_wall_vs_batched']:>10.1f}{m['ratio_cpu_vs_batched']:>9.1f}")
    print(f"(x: over generate_single; x b: over generate_batched) identical outputs across modes: "
          f"{r['identical_outputs']}; tokenizing per check (CPU ms): {r['tokenize_ms_per_check']}")


def _print(result: dict[str, Any]) -> None:
    print(f"{result['benchmark']}\n{result['model']}; batch {result['batch_size']}, "
          f"{result['torch_threads']} thread(s)")
    _print_run(result)
    if result.get("long"):
        _print_run(result["long"])
    print(f"target >= {result['target_ratio']}x over generate_single: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
    m = result["memory"]
    print(f"memory (a {m['weights_mb']:.0f} MB random checkpoint): RSS +{m['rss_growth_first_guard_mb']:.1f} MB for "
          f"the first guard, +{m['rss_growth_next_guards_mb']:.1f} MB for the next {m['guards'] - 1} (one model "
          f"object: {m['one_model_object']}); peak RSS {m['peak_rss_mb_before_guards']:.0f} -> "
          f"{m['peak_rss_mb_after_guards']:.0f} MB; {m['guards']} private loads instead would add "
          f"+{m['rss_growth_private_loads_mb']:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--long-new-tokens", type=int, default=160, help="the long-answer run (0: skip it)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--memory-child", nargs=2, metavar=("TINY", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--guards", type=int, default=10, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(_memory_child(*args.memory_child, args.guards)))
        return 0
    result = run(args.quick, threads=args.threads, max_new_tokens=args.max_new_tokens,
                 long_new_tokens=args.long_new_tokens or None, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
