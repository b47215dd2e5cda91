"""GRPO with TRL for vision-language guards: datasets, trainer, logging, checkpoints, final model.

:func:`run` is what ``python -m training.run --config CONFIG.yaml`` calls:

1. build the train (and eval) dataset: a TRL export folder as is, or any samples source
   ingested, optionally turned partly out-of-policy, leak-checked against eval, rendered
   with the core protocol (balance report printed);
2. build ``GRPOTrainer`` from the model *path* (TRL rebuilds the reference model from it
   when ``beta > 0``), one reward function per component, LoRA if enabled, vLLM if enabled;
3. train with a progress bar and one summary line per logging step; every log record,
   each reward component included, goes to ``<output_dir>/metrics.jsonl``;
4. checkpoint every ``save_steps`` (HF Trainer format: model, optimizer, scheduler, RNG,
   trainer state), resume with ``resume_from_checkpoint``;
5. save ``<output_dir>/final``: the model (LoRA merged by default) and its processor,
   loadable by ``TransformersBackend``, vLLM and ``from_pretrained``, with the taxonomy
   it was trained on (``taxonomy.yaml``) and a ``proguard_training.json`` record.

Multi-GPU: launch the same command under ``accelerate launch`` (DDP, DeepSpeed ZeRO-2/3,
FSDP); see docs/training.md.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proguard_rails.errors import ConfigurationError, MissingDependencyError
from proguard_rails.taxonomy import Taxonomy

from .config import TINY_MODEL, TrainConfig

logger = logging.getLogger("training.grpo")

REQUIRED_COLUMNS = ("prompt", "images", "ground_truth")


@dataclass
class RunResult:
    output_dir: Path
    final_dir: Path | None
    global_step: int
    metrics_path: Path
    log_history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None


# ---------------------------------------------------------------------------- setup helpers
def _process_defaults() -> None:
    # The dataloader forks after the tokenizer ran; silence the tokenizers fork warning.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(path: str) -> str:
    if path == TINY_MODEL:
        from proguard_rails.testing import tiny_model_path

        return str(tiny_model_path())
    return path


def load_taxonomy(cfg: TrainConfig) -> Taxonomy:
    return Taxonomy.from_yaml(cfg.taxonomy) if cfg.taxonomy else Taxonomy.default()


def _is_trl_export(path: Path) -> bool:
    if not path.is_dir() or not (path / "dataset_info.json").exists():
        return False
    try:
        info = json.loads((path / "dataset_info.json").read_text())
        return all(c in (info.get("features") or {}) for c in REQUIRED_COLUMNS)
    except (OSError, ValueError):
        return False


def load_samples_for(spec: str, cfg: TrainConfig, taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    """Samples from a data spec (None when the spec is a ready TRL export)."""
    from collections import Counter

    from .data import Ingested, load_samples, make_out_of_policy

    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name != "smoke":
            raise ConfigurationError(f"unknown built-in dataset {spec!r}; available: builtin:smoke")
        from .data.synthetic import smoke_samples

        samples = smoke_samples(taxonomy)
    else:
        p = Path(spec)
        if _is_trl_export(p):
            return None
        samples = load_samples(p, cfg.data.mapping, taxonomy=taxonomy, split=cfg.data.split)
    dropped, unmapped = dict(getattr(samples, "skipped", {})), dict(getattr(samples, "unmapped", {}))
    samples = list(samples)
    if cfg.data.out_of_policy_fraction > 0:
        samples = make_out_of_policy(samples, taxonomy, fraction=cfg.data.out_of_policy_fraction,
                                     level=cfg.data.hold_out_level, extra_holdout=cfg.data.extra_holdout,
                                     seed=cfg.data.seed)
    if cfg.data.max_samples:
        samples = samples[: cfg.data.max_samples]
    samples = Ingested(samples, skipped=Counter(dropped), unmapped=Counter(unmapped))
    if not samples:
        raise ConfigurationError(f"data source {spec!r} gave no samples")
    return samples


def duplicate_finder(cfg: TrainConfig):  # type: ignore[no-untyped-def]
    """The leak check's detector with the config's thresholds (``data.near_duplicate_threshold``, ...)."""
    from .data.splits import DuplicateFinder

    d = cfg.data
    return DuplicateFinder(threshold=d.near_duplicate_threshold, containment=d.containment,
                           template_max_span=d.template_max_span, template_min_shared=d.template_min_shared)


def build_datasets(cfg: TrainConfig, taxonomy: Taxonomy):  # type: ignore[no-untyped-def]
    """``(train_dataset, eval_dataset_or_None, info)`` for the trainer."""
    from datasets import load_from_disk

    from .data import balance_report, check_leakage
    from .data.export import to_trl_dataset

    info: dict[str, Any] = {}
    train_samples = load_samples_for(cfg.data.train, cfg, taxonomy)
    eval_samples = load_samples_for(cfg.data.eval, cfg, taxonomy) if cfg.data.eval else None
    if train_samples is not None:
        report = balance_report(train_samples)
        info["balance"] = report.to_dict()
        logger.info("training set balance:\n%s", report.to_markdown())
    if train_samples is not None and eval_samples is not None:
        leaks = check_leakage({"train": train_samples, "eval": eval_samples}, finder=duplicate_finder(cfg))
        info["leakage"] = leaks.summary()
        if not leaks.ok and not cfg.data.allow_leakage:
            raise ConfigurationError(
                f"train and eval overlap: {leaks.summary()}, e.g. {leaks.pairs[:3]}. Split with "
                "training.data.split_samples, or set data.allow_leakage: true"
            )

    def as_dataset(spec: str, samples):  # type: ignore[no-untyped-def]
        if samples is None:
            ds = load_from_disk(spec)
            missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
            if missing:
                raise ConfigurationError(f"{spec}: TRL export lacks columns {missing}")
            if len(ds):
                exported = json.loads(ds[0]["ground_truth"]).get("taxonomy")
                if exported and exported != taxonomy.fingerprint:
                    raise ConfigurationError(
                        f"{spec} was exported with another policy (taxonomy fingerprint {exported}, this run's is "
                        f"{taxonomy.fingerprint}); set `taxonomy:` to the policy used at export time"
                    )
            return ds
        return to_trl_dataset(samples, taxonomy, templates=cfg.data.templates)

    train = as_dataset(cfg.data.train, train_samples)
    evald = as_dataset(cfg.data.eval, eval_samples) if cfg.data.eval else None
    info["train_rows"] = len(train)
    return train, evald, info


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def build_grpo_args(cfg: TrainConfig, *, has_cuda: bool | None = None):  # type: ignore[no-untyped-def]
    """``trl.GRPOConfig`` from the config sections."""
    from trl import GRPOConfig

    from .rewards.trl import default_reward_weights

    cuda = _cuda() if has_cuda is None else has_cuda
    if cfg.vllm.enabled and not cuda:
        raise ConfigurationError("vllm.enabled needs a CUDA GPU; set vllm.enabled: false for CPU runs")
    dtype = cfg.model.dtype
    if dtype == "auto":
        import torch

        dtype = "bfloat16" if cuda and torch.cuda.is_bf16_supported() else "float32"
    init_kwargs: dict[str, Any] = {"dtype": dtype}
    if cfg.model.attn_implementation:
        init_kwargs["attn_implementation"] = cfg.model.attn_implementation
    kwargs: dict[str, Any] = {
        "logging_steps": 1,
        "report_to": "none",
        "save_strategy": "steps",
        "bf16": dtype == "bfloat16",
        "gradient_checkpointing": cuda,
        "logging_first_step": True,
    }
    if not cuda:
        kwargs.update(use_cpu=True, bf16=False)
    kwargs.update(cfg.grpo)
    kwargs.update(
        output_dir=cfg.output_dir,
        seed=cfg.seed,
        model_init_kwargs=init_kwargs,
        trust_remote_code=cfg.model.trust_remote_code,
        reward_weights=default_reward_weights(cfg.reward.components, format_weight=cfg.reward.format_weight,
                                              overrides=cfg.reward.weights),
    )
    if cfg.vllm.enabled:
        v = cfg.vllm
        kwargs.update(
            use_vllm=True, vllm_mode=v.mode, vllm_server_base_url=v.server_base_url, vllm_server_host=v.server_host,
            vllm_server_port=v.server_port, vllm_server_timeout=v.server_timeout,
            vllm_gpu_memory_utilization=v.gpu_memory_utilization, vllm_tensor_parallel_size=v.tensor_parallel_size,
            vllm_max_model_length=v.max_model_length, vllm_enable_sleep_mode=v.enable_sleep_mode,
        )
    try:
        return GRPOConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"GRPOConfig rejected the settings: {exc}") from exc


def build_peft_config(cfg: TrainConfig):  # type: ignore[no-untyped-def]
    if not cfg.lora.enabled:
        return None
    try:
        from peft import LoraConfig
    except ImportError as exc:
        raise MissingDependencyError("peft", "train", "LoRA training") from exc
    lo = cfg.lora
    return LoraConfig(
        r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=lo.target_modules,
        exclude_modules=r".*\bvisual\b.*" if lo.freeze_vision else None, task_type="CAUSAL_LM",
    )


# ---------------------------------------------------------------------------- logging
def _make_callback(metrics_path: Path, components: list[str]):  # type: ignore[no-untyped-def]
    from transformers import TrainerCallback

    class ProGuardLogCallback(TrainerCallback):
        """Writes every log record to metrics.jsonl and prints one summary line per step."""

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if not logs or not state.is_world_process_zero:
                return
            record = {"step": state.global_step, "time": round(time.time(), 3), **logs}
            with metrics_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=float) + "\n")
            if "loss" not in logs and "reward" not in logs:
                return
            parts = [f"step {state.global_step}/{state.max_steps}"]
            for key in ("loss", "reward"):
                if key in logs:
                    parts.append(f"{key} {logs[key]:.4g}")
            comps = []
            for name in components:
                v = logs.get(f"rewards/{name}/mean")
                if v is not None:
                    comps.append(f"{name} {'n/a' if isinstance(v, float) and math.isnan(v) else f'{v:.3f}'}")
            if comps:
                parts.append("[" + ", ".join(comps) + "]")
            logger.info(" | ".join(parts))

    return ProGuardLogCallback()


def _checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    cps = [p for p in output_dir.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")
           and p.name.split("-")[-1].isdigit()]
    return sorted(cps, key=lambda p: int(p.name.split("-")[-1]))


def _resume_target(cfg: TrainConfig) -> str | None:
    r = cfg.resume_from_checkpoint
    out = Path(cfg.output_dir)
    if r in (None, False):
        if _checkpoints(out) and not cfg.allow_existing_output:
            raise ConfigurationError(
                f"{out} already has checkpoints ({_checkpoints(out)[-1].name}); resume with --resume "
                "(resume_from_checkpoint: true), pick a new output_dir, or set allow_existing_output: true"
            )
        return None
    if r is True or r == "auto":
        cps = _checkpoints(out)
        if not cps:
            if r == "auto":
                return None
            raise ConfigurationError(f"resume_from_checkpoint: true, but {out} has no checkpoint-* folder yet")
        return str(cps[-1])
    p = Path(str(r))
    if not p.is_dir() or not (p / "trainer_state.json").exists():
        raise ConfigurationError(f"resume_from_checkpoint: {p} is not a Trainer checkpoint (no trainer_state.json)")
    return str(p)


# ---------------------------------------------------------------------------- final model
def save_final(trainer: Any, cfg: TrainConfig, taxonomy: Taxonomy, extra: dict[str, Any]) -> Path:
    """Save model + processor to ``cfg.final_path`` (LoRA merged unless lora.merge_on_save is false).

    Call on every process: ``save_model`` gathers sharded weights (DeepSpeed ZeRO-3, FSDP)
    and writes from the main process only.
    """
    final = cfg.final_path
    main = trainer.is_world_process_zero()
    if main and final.exists():
        shutil.rmtree(final)
    model = trainer.accelerator.unwrap_model(trainer.model)
    is_peft = hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")
    zero3 = getattr(trainer, "is_deepspeed_enabled", False) and getattr(
        trainer.accelerator.state.deepspeed_plugin, "zero_stage", 0) == 3
    if is_peft and cfg.lora.merge_on_save and not zero3:
        if main:
            # Training is over: merge in place (a copy would double the memory of a large model).
            merged = model.merge_and_unload()
            merged.save_pretrained(str(final), safe_serialization=True)
            trainer.processing_class.save_pretrained(str(final))
    else:
        if is_peft and cfg.lora.merge_on_save:
            logger.warning("LoRA under DeepSpeed ZeRO-3: saving the adapter only; merge it into the base model "
                           "with peft (PeftModel.from_pretrained(...).merge_and_unload()) before serving")
        trainer.save_model(str(final))
    if main:
        (final / "taxonomy.yaml").write_text(taxonomy.to_yaml(), encoding="utf-8")
        record = {
            "kind": "proguard-rails GRPO",
            "global_step": trainer.state.global_step,
            "taxonomy_fingerprint": taxonomy.fingerprint,
            "config": cfg.model_dump(mode="json"),
            **extra,
        }
        (final / "proguard_training.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                                      encoding="utf-8")
    return final


# ---------------------------------------------------------------------------- trainer
def trainer_class():  # type: ignore[no-untyped-def]
    """``GRPOTrainer`` with one fix for batches that mix text and image rows.

    TRL 1.16 extracts each prompt's images after generation as ``None`` for a text row and
    hands ``[None, [img], ...]`` to the processor for the training forward pass, which
    raises. The processor accepts ``[]`` for a row without images, so ``None`` entries
    become ``[]`` there; generation (vLLM included) still sees the original ``None``.
    """
    from trl import GRPOTrainer

    class ProGuardGRPOTrainer(GRPOTrainer):
        def _generate(self, prompts: list):  # type: ignore[no-untyped-def, override]
            out = super()._generate(prompts)
            if isinstance(out, tuple) and len(out) == 8 and isinstance(out[6], list):
                out = (*out[:6], [imgs if imgs is not None else [] for imgs in out[6]], out[7])
            return out

    return ProGuardGRPOTrainer


# ---------------------------------------------------------------------------- run
def build_trainer(cfg: TrainConfig, *, taxonomy: Taxonomy | None = None, train_dataset: Any = None,
                  eval_dataset: Any = None, scorer: Any = None):  # type: ignore[no-untyped-def]
    """A ready ``GRPOTrainer`` (datasets and scorer built from the config unless given)."""
    try:
        GRPOTrainer = trainer_class()
    except ImportError as exc:
        raise MissingDependencyError("trl", "train", "GRPO training") from exc
    from .rewards import RewardScorer, proguard_reward_functions
    from .rewards.embeddings import SentenceTransformerEmbedder

    tax = taxonomy or load_taxonomy(cfg)
    info: dict[str, Any] = {}
    if train_dataset is None:
        train_dataset, built_eval, info = build_datasets(cfg, tax)
        eval_dataset = eval_dataset if eval_dataset is not None else built_eval
    if scorer is None:
        from .rewards.calibration import SimilarityCalibration

        calibration = SimilarityCalibration.load(cfg.reward.calibration) if cfg.reward.calibration else None
        embedder = SentenceTransformerEmbedder(cfg.reward.embedding_model, device=cfg.reward.device,
                                               batch_size=cfg.reward.batch_size, calibration=calibration)
        scorer = RewardScorer(tax, embedder)
    funcs = proguard_reward_functions(scorer, components=cfg.reward.components)
    args = build_grpo_args(cfg)
    model_path = resolve_model_path(cfg.model.path)
    if not Path(model_path).exists() and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConfigurationError(f"model.path {model_path} does not exist (and the hub is offline)")
    if cfg.smoke_answer_bias:
        from transformers import AutoTokenizer

        from .smoke import answer_sequence_bias

        bias = answer_sequence_bias(AutoTokenizer.from_pretrained(model_path), tax, cfg.smoke_answer_bias)
        extra = args.generation_kwargs if isinstance(args.generation_kwargs, dict) else {}
        args.generation_kwargs = {**extra, "sequence_bias": bias}
    trainer = GRPOTrainer(
        model=model_path,
        reward_funcs=funcs,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        peft_config=build_peft_config(cfg),
    )
    trainer._proguard_info = info  # type: ignore[attr-defined]
    trainer._proguard_scorer = scorer  # type: ignore[attr-defined]
    return trainer


def _calibration_record(scorer: Any) -> dict[str, Any] | None:
    """The similarity calibration the reward used (recorded with the final model), if resolved."""
    from .rewards.calibration import shipped

    cal = getattr(scorer, "_calibration", None)
    embedder = getattr(scorer, "embedder", None)
    if cal is None and embedder is not None:
        cal = shipped(getattr(embedder, "embedder_id", ""))  # known without loading the model
    return cal.to_dict() if cal is not None else None


def run(cfg: TrainConfig) -> RunResult:
    """Train per the config; returns where things were written and the log history."""
    _process_defaults()
    tax = load_taxonomy(cfg)
    resume = _resume_target(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path = out / "metrics.jsonl"
    trainer = build_trainer(cfg, taxonomy=tax)
    trainer.add_callback(_make_callback(metrics_path, list(cfg.reward.components)))
    if resume:
        logger.info("resuming from %s", resume)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume)
    elapsed = time.time() - t0
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    if any(isinstance(x, float) and not math.isfinite(x) for x in losses):
        logger.warning("non-finite loss in the log history: %s", losses)
    final = None
    if cfg.save_final:
        extra = {"train_seconds": round(elapsed, 2), **trainer._proguard_info,
                 "similarity_calibration": _calibration_record(trainer._proguard_scorer)}
        final = save_final(trainer, cfg, tax, extra)
        logger.info("saved the final model to %s", final)
    return RunResult(out, final, trainer.state.global_step, metrics_path, list(trainer.state.log_history),
                     resumed_from=resume)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    log = logging.getLogger("training")
    if not log.handlers:
        log.addHandler(handler)
    log.setLevel(level)


__all__ = ["RunResult", "build_datasets", "build_grpo_args", "build_peft_config", "build_trainer",
           "configure_logging", "resolve_model_path", "run", "save_final"]
