"""The GRPO run configuration (YAML, validated with pydantic).

A config has sections ``model``, ``data``, ``reward``, ``lora``, ``vllm``, ``grpo`` and a
few top-level keys (``output_dir``, ``taxonomy``, ``resume_from_checkpoint``, ...); see
``training/configs/*.yaml`` and docs/training.md. ``grpo`` passes any field of TRL's
``GRPOConfig`` through (unknown names are errors, with a suggestion); the fields this
pipeline manages itself (``output_dir``, ``reward_weights``, ``use_vllm``, ``vllm_*``,
``seed``, ``model_init_kwargs``) are set from their own sections instead.

Strings may use ``${ENV_VAR}`` and ``~``. Relative paths are relative to the working
directory, except ``${CONFIG_DIR}``, which expands to the config file's folder.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from proguard_rails.errors import ConfigurationError

from .rewards.scoring import COMPONENTS

#: GRPOConfig fields set from other sections (the message says where).
MANAGED_GRPO_FIELDS: dict[str, str] = {
    "output_dir": "top-level output_dir",
    "reward_weights": "reward.format_weight / reward.weights",
    "use_vllm": "vllm.enabled",
    "vllm_mode": "vllm.mode",
    "vllm_server_base_url": "vllm.server_base_url",
    "vllm_server_host": "vllm.server_host",
    "vllm_server_port": "vllm.server_port",
    "vllm_server_timeout": "vllm.server_timeout",
    "vllm_gpu_memory_utilization": "vllm.gpu_memory_utilization",
    "vllm_tensor_parallel_size": "vllm.tensor_parallel_size",
    "vllm_max_model_length": "vllm.max_model_length",
    "vllm_enable_sleep_mode": "vllm.enable_sleep_mode",
    "seed": "top-level seed",
    "model_init_kwargs": "model.dtype / model.attn_implementation",
    "resume_from_checkpoint": "top-level resume_from_checkpoint",
}

TINY_MODEL = "tiny"  # model.path value: the tiny random Qwen2.5-VL from proguard_rails.testing


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Section):
    path: str = Field(..., description="local checkpoint folder or hub id; `tiny` for the test model")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="auto: bfloat16 on a GPU that supports it, else float32"
    )
    attn_implementation: str | None = Field(None, description="e.g. flash_attention_2, sdpa")
    trust_remote_code: bool = False


class DataSection(_Section):
    train: str = Field(..., description="TRL export folder, samples file/folder (any ingest format), or builtin:smoke")
    eval: str | None = None
    mapping: str | None = Field(None, description="mapping YAML for samples sources")
    templates: Literal["released", "compact"] = Field(
        "released", description="prompt templates; compact only for CPU smoke runs on the tiny model"
    )
    split: str | None = Field(None, description="split of a Hugging Face DatasetDict source")
    out_of_policy_fraction: float = Field(0.0, ge=0.0, le=1.0,
                                          description="share of unsafe samples turned into out-of-policy ones")
    hold_out_level: Literal["category", "entry"] = "category"
    extra_holdout: int | tuple[int, int] = 0
    max_samples: int | None = Field(None, ge=1)
    allow_leakage: bool = Field(False, description="allow train/eval near-duplicates (not recommended)")
    near_duplicate_threshold: float = Field(0.6, gt=0.0, le=1.0,
                                            description="character 5-gram Jaccard at which two texts are near-duplicates")
    containment: float = Field(0.9, gt=0.0, le=1.0,
                               description="share of one text's 5-grams inside another's that also makes them near-duplicates")
    template_max_span: int = Field(3, ge=0, description="words two template variants may differ in (0: off)")
    template_min_shared: float = Field(0.7, gt=0.0, le=1.0,
                                       description="share of the longer text's words template variants must share")
    seed: int = 0


class RewardSection(_Section):
    embedding_model: str | None = Field(None, description="sentence-transformers path/id; default MiniLM")
    calibration: str | None = Field(
        None, description="similarity-threshold calibration JSON (python -m training.rewards.calibration); "
        "default: the embedder's own (shipped for MiniLM, else measured on the synonym bank on first use)")
    device: str | None = Field(None, description="embedder device; default: cuda if available")
    batch_size: int = Field(256, ge=1)
    components: list[str] = Field(default_factory=lambda: list(COMPONENTS))
    format_weight: float = Field(0.0, description="weight of the format gate's own 1/0 in the summed reward")
    weights: dict[str, float] = Field(default_factory=dict, description="per-component weight overrides")

    @field_validator("components")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in COMPONENTS]
        if bad:
            raise ValueError(f"unknown reward components {bad}; available: {list(COMPONENTS)}")
        if not v:
            raise ValueError("at least one reward component is needed")
        return v

    @model_validator(mode="after")
    def _weights_known(self) -> RewardSection:
        bad = [k for k in self.weights if k not in self.components]
        if bad:
            raise ValueError(f"weights for components not in use: {bad} (components: {self.components})")
        return self


class LoraSection(_Section):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    freeze_vision: bool = Field(True, description="keep LoRA off the vision tower (modules under `visual`)")
    merge_on_save: bool = Field(True, description="merge the adapter into the saved final model")


class VLLMSection(_Section):
    enabled: bool = False
    mode: Literal["colocate", "server"] = "colocate"
    server_base_url: str | None = None
    server_host: str = "0.0.0.0"
    server_port: int = 8000
    server_timeout: float = 240.0
    gpu_memory_utilization: float = Field(0.3, gt=0.0, le=1.0)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_length: int | None = None
    enable_sleep_mode: bool = False


class TrainConfig(_Section):
    """A complete GRPO run."""

    model: ModelSection
    data: DataSection
    output_dir: str
    taxonomy: str | None = Field(None, description="policy YAML; default: the released taxonomy")
    reward: RewardSection = Field(default_factory=RewardSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    vllm: VLLMSection = Field(default_factory=VLLMSection)
    grpo: dict[str, Any] = Field(default_factory=dict, description="any TRL GRPOConfig field")
    resume_from_checkpoint: bool | Literal["auto"] | str | None = Field(
        None, description="true: latest checkpoint in output_dir (error if none); auto: latest if any; or a path"
    )
    save_final: bool = True
    final_dir: str | None = Field(None, description="default: <output_dir>/final")
    seed: int = 42
    allow_existing_output: bool = Field(False, description="train into an output_dir that has checkpoints")
    smoke_answer_bias: float = Field(
        0.0, ge=0.0, description="CPU smoke runs only: bias the tiny random model's sampling toward well-formed "
        "answers (training.smoke) so rewards vary within groups; 0 (off) for every real run")

    @model_validator(mode="after")
    def _smoke_bias_without_vllm(self) -> TrainConfig:
        if self.smoke_answer_bias and self.vllm.enabled:
            raise ValueError("smoke_answer_bias steers transformers generation; it cannot be used with vllm.enabled")
        return self

    @field_validator("grpo")
    @classmethod
    def _grpo_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if key in MANAGED_GRPO_FIELDS:
                raise ValueError(f"grpo.{key} is set through {MANAGED_GRPO_FIELDS[key]}, not the grpo section")
        known = grpo_config_fields()
        if known is not None:
            for key in v:
                if key not in known:
                    close = difflib.get_close_matches(key, known, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    raise ValueError(f"grpo.{key} is not a field of trl.GRPOConfig{hint}")
        return v

    @property
    def final_path(self) -> Path:
        return Path(self.final_dir) if self.final_dir else Path(self.output_dir) / "final"


def grpo_config_fields() -> set[str] | None:
    """Names of ``trl.GRPOConfig`` fields (None when TRL is not installed: checked at run time)."""
    try:
        import dataclasses

        from trl import GRPOConfig
    except ImportError:
        return None
    return {f.name for f in dataclasses.fields(GRPOConfig)}


def _expand(value: Any, config_dir: str) -> Any:
    if isinstance(value, str):
        return os.path.expanduser(os.path.expandvars(value.replace("${CONFIG_DIR}", config_dir)))
    if isinstance(value, Mapping):
        return {k: _expand(v, config_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, config_dir) for v in value]
    return value


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise ConfigurationError(f"override {dotted}: {k} is not a section")
        cur = nxt
    cur[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``["grpo.max_steps=3", "lora.enabled=true"]`` (values parsed as YAML scalars)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"override {item!r} is not KEY=VALUE (e.g. grpo.max_steps=3)")
        _set_dotted(data, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return data


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = [f"{origin}: invalid training config:"]
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: Mapping[str, Any], *, origin: str = "config", config_dir: str = ".") -> TrainConfig:
    """Validate a config mapping; errors list every problem with its dotted key."""
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{origin}: a training config is a YAML mapping")
    try:
        return TrainConfig.model_validate(_expand(dict(data), config_dir))
    except ValidationError as exc:
        raise ConfigurationError(_format_errors(exc, origin)) from None


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read and validate a YAML config, applying ``KEY=VALUE`` overrides first."""
    p = Path(path)
    if not p.exists():
        raise ConfigurationError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{p}: a training config is a YAML mapping")
    apply_overrides(data, overrides)
    return parse_config(data, origin=str(p), config_dir=str(p.resolve().parent))


__all__ = [
    "MANAGED_GRPO_FIELDS",
    "TINY_MODEL",
    "DataSection",
    "LoraSection",
    "ModelSection",
    "RewardSection",
    "TrainConfig",
    "VLLMSection",
    "apply_overrides",
    "grpo_config_fields",
    "load_config",
    "parse_config",
]
