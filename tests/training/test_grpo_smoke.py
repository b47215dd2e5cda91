"""GRPO: config validation, and the CPU smoke run (tiny Qwen2.5-VL) with checkpoint, final model and resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from proguard_rails.errors import ConfigurationError
from training.config import load_config, parse_config
from training.rewards import COMPONENTS

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "training" / "configs" / "cpu_smoke.yaml"
GPU_3B = REPO / "training" / "configs" / "single_gpu_3b.yaml"


# ---------------------------------------------------------------------------- config validation
def test_shipped_configs_validate() -> None:
    smoke = load_config(SMOKE)
    assert smoke.model.path == "tiny" and smoke.data.templates == "compact"
    assert smoke.taxonomy and Path(smoke.taxonomy).exists()  # ${CONFIG_DIR} expanded
    big = load_config(GPU_3B)
    assert big.vllm.enabled and big.model.dtype == "bfloat16" and big.grpo["num_generations"] == 8


@pytest.mark.parametrize("data, message", [
    ({"model": {"path": "m"}, "data": {"train": "x"}}, "output_dir: required key is missing"),
    ({"model": {"path": "m", "dtyp": "float32"}, "data": {"train": "x"}, "output_dir": "o"}, "model.dtyp: unknown key"),
    ({"model": {"path": "m"}, "data": {"train": "x"}, "output_dir": "o", "grpo": {"max_stepz": 3}},
     "did you mean max_steps"),
    ({"model": {"path": "m"}, "data": {"train": "x"}, "output_dir": "o", "grpo": {"use_vllm": True}},
     "vllm.enabled"),
    ({"model": {"path": "m"}, "data": {"train": "x"}, "output_dir": "o", "reward": {"components": ["fmt"]}},
     "unknown reward components"),
    ({"model": {"path": "m"}, "data": {"train": "x", "out_of_policy_fraction": 2}, "output_dir": "o"},
     "data.out_of_policy_fraction"),
])
def test_config_errors_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        parse_config(data)


def test_cli_reports_config_errors_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.run import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {path: tiny}\ndata: {train: builtin:smoke}\noutput_dir: o\ngrpo: {lerning_rate: 1}\n")
    assert main(["--config", str(bad)]) == 2
    assert "did you mean learning_rate" in capsys.readouterr().err
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2


def test_lite_subcommand_is_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys
    import types

    from training import run as run_mod

    seen: list[list[str]] = []
    fake = types.ModuleType("training.lite.cli")
    fake.main = lambda argv: seen.append(argv) or 0  # type: ignore[attr-defined]
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        if name == "training.lite.cli":
            return fake
        return real_import(name, package)

    monkeypatch.setattr(run_mod.importlib, "import_module", fake_import)
    assert run_mod.main(["lite", "train", "--x"]) == 0 and seen == [["train", "--x"]]
    monkeypatch.setitem(sys.modules, "training.lite", None)  # as if the package were absent
    monkeypatch.setattr(run_mod.importlib, "import_module", real_import)
    assert run_mod.main(["lite"]) == 2


def test_lora_targets_the_language_model_only(tmp_path: Path) -> None:
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from proguard_rails.testing import tiny_model_path
    from training.grpo import build_peft_config

    cfg = load_config(SMOKE, ["lora.enabled=true", f"output_dir={tmp_path}"])
    model = get_peft_model(AutoModelForImageTextToText.from_pretrained(str(tiny_model_path())), build_peft_config(cfg))
    lora = [n for n, p in model.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n in lora)
    assert not any("visual" in n for n in lora)
    assert any("language_model" in n and "q_proj" in n for n in lora)


def test_trl_export_from_another_policy_is_refused(tmp_path: Path) -> None:
    from training.data.export import save_trl
    from training.data.synthetic import smoke_samples
    from training.grpo import build_datasets, load_taxonomy

    export = save_trl(smoke_samples(with_ood=False)[:4], tmp_path / "trl")  # the full released policy
    cfg = load_config(SMOKE, [f"data.train={export}", f"output_dir={tmp_path / 'o'}"])  # the 2-category policy
    with pytest.raises(ConfigurationError, match="another policy"):
        build_datasets(cfg, load_taxonomy(cfg))
    cfg = load_config(SMOKE, [f"data.train={export}", f"output_dir={tmp_path / 'o'}", "taxonomy=null"])
    train, evald, _ = build_datasets(cfg, load_taxonomy(cfg))
    assert len(train) == 4 and evald is None


def test_smoke_answer_grammar_is_well_formed_and_cpu_only() -> None:
    from proguard_rails.taxonomy import Taxonomy
    from training.rewards import format_gate
    from training.smoke import answer_grammar

    answers = answer_grammar(Taxonomy.from_yaml(REPO / "training" / "configs" / "smoke_taxonomy.yaml"))
    layouts = [("Response:" in a and "text") or "image" for a in answers]
    assert all(format_gate(a, m)[0] for a, m in zip(answers, layouts, strict=True))
    assert {"text", "image"} == set(layouts) and len({a.split("Category:")[1] for a in answers}) >= 4
    with pytest.raises(ConfigurationError, match="smoke_answer_bias"):
        load_config(SMOKE, ["vllm.enabled=true"])
    assert load_config(GPU_3B).smoke_answer_bias == 0.0


# ---------------------------------------------------------------------------- the smoke run
def _summary(stdout: str) -> dict:
    """The JSON summary the CLI prints last (the trainer prints its own log dicts before it)."""
    return json.loads(stdout[stdout.rindex('{\n  "output_dir"'):])


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_cpu_smoke_run_learns_checkpoints_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from training.run import main

    out = tmp_path / "run"
    fast = ["--output-dir", str(out)]
    assert main(["--config", str(SMOKE), "--set", "grpo.max_steps=2", "--set", "grpo.save_steps=2", *fast]) == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["global_step"] == 2

    # finite loss, and every reward component logged on every step
    steps = [r for r in _records(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"])
        for name in COMPONENTS:
            assert f"rewards/{name}/mean" in r
    # learning signal: rewards differ inside the groups, so advantages, loss and gradient are non-zero
    varied = [r for r in steps if r["reward_std"] > 0 and r["frac_reward_zero_std"] < 1]
    assert varied, f"no step had rewards that vary inside a group: {steps}"
    assert all(r["grad_norm"] > 0 for r in varied)
    assert any(abs(r["loss"]) > 1e-6 for r in steps)
    assert any(r["rewards/format/mean"] > 0 for r in steps)  # well-formed answers were sampled and parsed
    assert (out / "checkpoint-2" / "trainer_state.json").exists()
    # the weights moved away from the tiny model they started from
    from safetensors.torch import load_file

    from proguard_rails.testing import tiny_model_path

    before = load_file(str(tiny_model_path() / "model.safetensors"))
    after = load_file(str(out / "checkpoint-2" / "model.safetensors"))
    assert set(before) == set(after)
    changed = {k for k in before if not before[k].float().allclose(after[k].float(), atol=1e-7)}
    assert "lm_head.weight" in changed and any(".layers.1." in k for k in changed), sorted(changed)

    # the final folder: model + processor + the taxonomy it was trained on
    final = out / "final"
    meta = json.loads((final / "proguard_training.json").read_text())
    assert meta["global_step"] == 2 and (final / "taxonomy.yaml").exists()
    # the similarity thresholds the reward used are recorded with the model (MiniLM's shipped calibration)
    assert meta["similarity_calibration"]["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    from proguard_rails.backends import TransformersBackend
    from proguard_rails.inputs import build_request
    from proguard_rails.protocol import render
    from proguard_rails.taxonomy import Taxonomy

    backend = TransformersBackend(final, device="cpu", dtype="float32", max_new_tokens=4)
    try:
        prompt = render(build_request("hello", "hi there"), Taxonomy.from_yaml(final / "taxonomy.yaml"))
        gen = await_generation(backend, prompt)
        assert isinstance(gen.text, str)
    finally:
        backend.close() if hasattr(backend, "close") else None

    # resume: continues from the saved step, does not start over
    assert main(["--config", str(SMOKE), "--resume", "--set", "grpo.max_steps=3", *fast]) == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["global_step"] == 3 and summary["resumed_from"].endswith("checkpoint-2")
    steps = [r["step"] for r in _records(out / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3]
    assert json.loads((final / "proguard_training.json").read_text())["global_step"] == 3

    # without --resume, an output_dir with checkpoints is refused rather than mixed
    assert main(["--config", str(SMOKE), *fast]) == 2


def await_generation(backend, prompt):  # type: ignore[no-untyped-def]
    import asyncio

    return asyncio.run(backend.agenerate(prompt))
