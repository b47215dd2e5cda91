"""Every shipped training route starts: TRL configs build a trainer, accelerate configs run a
GRPO step (DeepSpeed ZeRO-2/3 included), and the extras carry what each documented command needs.

All on CPU with the tiny Qwen2.5-VL. Only the hardware-bound settings are overridden (model
path and dtype, data, vLLM, embedder device, output folder); everything else in a config, its
``grpo`` section included (``report_to: tensorboard``, ``bf16``, batch sizes), is what the
trainer is built from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from training.config import load_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"
SMOKE_TAXONOMY = CONFIGS / "smoke_taxonomy.yaml"
DOCS = REPO / "docs" / "training.md"


def _training_configs() -> list[Path]:
    out = []
    for p in sorted(CONFIGS.glob("*.yaml")):
        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "model" in data:
            out.append(p)
    return out


TRAINING_CONFIGS = _training_configs()
ACCELERATE_CONFIGS = sorted((CONFIGS / "accelerate").glob("*.yaml"))


def cpu_overrides(output_dir: Path) -> list[str]:
    """What a CPU run must change in a GPU config, and nothing else."""
    return ["model.path=tiny", "model.dtype=float32", "data.train=builtin:smoke", "data.eval=null",
            "data.templates=compact", f"taxonomy={SMOKE_TAXONOMY}", "vllm.enabled=false", "reward.device=cpu",
            f"output_dir={output_dir}"]


def _extras() -> dict[str, list[Any]]:
    import tomllib
    from packaging.requirements import Requirement

    raw = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {name: [Requirement(r) for r in reqs] for name, reqs in raw.items()}


def _req(extra: str, name: str) -> Any:
    found = [r for r in _extras()[extra] if r.name == name]
    assert found, f"the {extra!r} extra does not install {name}"
    return found[0]


def test_the_shipped_configs_are_found() -> None:
    names = {p.name for p in TRAINING_CONFIGS}
    assert {"cpu_smoke.yaml", "single_gpu_3b.yaml", "node_8gpu_7b.yaml"} <= names
    assert {p.name for p in ACCELERATE_CONFIGS} == {"multi_gpu.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml"}


@pytest.mark.slow
@pytest.mark.parametrize("config", TRAINING_CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_training_config_builds_a_trainer(config: Path, tmp_path: Path) -> None:
    from training.grpo import build_grpo_args, build_trainer

    shipped = load_config(config)
    cfg = load_config(config, cpu_overrides(tmp_path))
    trainer = build_trainer(cfg)
    args = trainer.args
    for key, value in cfg.grpo.items():
        got = getattr(args, key)
        if key == "report_to":
            assert list(got) == ([value] if isinstance(value, str) else list(value))
        elif hasattr(got, "value"):  # enums (lr_scheduler_type, eval_strategy)
            assert got.value == value, key
        else:
            assert got == value, key
    report_to = args.report_to or []
    callbacks = {type(c).__name__ for c in trainer.callback_handler.callbacks}
    if "tensorboard" in report_to:
        assert "TensorBoardCallback" in callbacks  # it needs the tensorboard package at this point
    assert len(trainer.reward_funcs) == len(cfg.reward.components)
    # the vLLM settings, as the GPU run would pass them (the engine itself needs CUDA; bf16 off
    # only because TrainingArguments refuses bf16 without a GPU)
    if shipped.vllm.enabled:
        gpu_args = build_grpo_args(load_config(config, ["grpo.bf16=false", "model.dtype=float32"]), has_cuda=True)
        v = shipped.vllm
        assert gpu_args.use_vllm and gpu_args.vllm_mode == v.mode
        assert gpu_args.vllm_gpu_memory_utilization == v.gpu_memory_utilization
        assert gpu_args.vllm_tensor_parallel_size == v.tensor_parallel_size


def _accelerate_env(config: Path) -> dict[str, str]:
    """The environment ``accelerate launch --config_file CONFIG`` gives each rank, from accelerate's
    own launch code, for one process on this machine."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    from proguard_rails.testing import free_port

    port = free_port()
    args = launch_command_parser().parse_args(
        ["--config_file", str(config), "--num_processes", "1", "--main_process_port", str(port),
         "-m", "training.run", "--config", "CONFIG.yaml"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) if defaults else []
        if mp_from_config:
            fields.append("mixed_precision")
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    # torchrun's per-rank variables for rank 0 of a one-process world
    env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.stem)
def test_accelerate_configs_run_a_grpo_step(config: Path, tmp_path: Path) -> None:
    accel = yaml.safe_load(config.read_text())
    env = {**os.environ, **_accelerate_env(config), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    overrides = [*cpu_overrides(tmp_path), "grpo.max_steps=1", "grpo.max_completion_length=8",
                 "grpo.save_strategy='no'"]
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("accelerate_probe.py")),
                           str(CONFIGS / "cpu_smoke.yaml"), *overrides],
                          env=env, capture_output=True, text=True, timeout=600, cwd=str(REPO))
    line = next((x for x in proc.stdout.splitlines() if x.startswith("ACCELERATE_PROBE ")), None)
    assert line, f"exit {proc.returncode}:\n{proc.stderr[-5000:]}"
    result = json.loads(line.split(" ", 1)[1])
    assert result["global_step"] == 1 and len(result["loss"]) == 1
    if accel["distributed_type"] == "DEEPSPEED":
        assert result["deepspeed"] and result["zero_stage"] == accel["deepspeed_config"]["zero_stage"]
    else:
        assert not result["deepspeed"]


# ---------------------------------------------------------------------------- extras
def test_extras_carry_what_the_shipped_configs_need() -> None:
    report_to = set()
    for p in TRAINING_CONFIGS:
        value = load_config(p).grpo.get("report_to", [])
        report_to |= {value} if isinstance(value, str) else set(value)
    packages = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio", "mlflow": "mlflow"}
    for integration in report_to - {"none"}:
        _req("train", packages[integration])
    if any(yaml.safe_load(p.read_text())["distributed_type"] == "DEEPSPEED" for p in ACCELERATE_CONFIGS):
        _req("deepspeed", "deepspeed")
        assert any(r.name == "proguard-rails" and "train" in r.extras for r in _extras()["deepspeed"])


def test_vllm_extra_is_the_range_trl_supports() -> None:
    import trl
    from packaging.version import Version

    trl_req = _req("train", "trl")
    assert trl_req.specifier.contains(trl.__version__), f"installed trl {trl.__version__} outside {trl_req}"
    src = (Path(trl.__file__).parent / "import_utils.py").read_text()
    m = re.search(r'Version\("([\d.]+)"\)\s*<=\s*_vllm_base_version\s*<=\s*Version\("([\d.]+)"\)', src)
    assert m, "trl.import_utils no longer states its supported vLLM range in the expected form; re-check the extra"
    low, high = Version(m.group(1)), Version(m.group(2))
    spec = _req("vllm", "vllm").specifier
    assert spec.contains(str(low)) and spec.contains(str(high)) and spec.contains(f"{high}.post1")
    below = Version(f"{low.major}.{low.minor - 1}.0")
    above = Version(f"{high.major}.{high.minor}.{high.micro + 1}")
    assert not spec.contains(str(below)) and not spec.contains(str(above)), spec


def test_verl_extra_pins_the_supported_range() -> None:
    req = _req("verl", "verl")
    assert req.specifier.contains("0.9.1") and not req.specifier.contains("0.10.0")
    assert not req.specifier.contains("0.8.0")  # the reward keys of 0.8 differ (training/verl/run_grpo.sh)


# ---------------------------------------------------------------------------- docs
def test_docs_commands_use_shipped_configs_and_existing_extras() -> None:
    text = DOCS.read_text(encoding="utf-8")
    extras = set(_extras())
    installs = re.findall(r"proguard-rails\[([a-z0-9,\-]+)\]", text)
    assert installs
    for group in installs:
        assert set(group.split(",")) <= extras, group
    for path in re.findall(r"--config(?:_file)?\s+(training/configs/\S+\.yaml)", text):
        assert (REPO / path).exists(), path
    for needed in ("training/configs/single_gpu_3b.yaml", "training/configs/node_8gpu_7b.yaml",
                   "training/configs/accelerate/deepspeed_zero3.yaml"):
        assert needed in text, f"docs/training.md gives no command with {needed}"
