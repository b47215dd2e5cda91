"""Runs inside verl's own environment (see ``verl_env.py``): composes verl's Hydra config and
drives verl's own reward and dataset code. Reads a JSON request on stdin, prints one JSON result.

Request: ``{"tokenizer": FOLDER, "jobs": [JOB, ...]}`` (one process for several jobs: importing
verl takes most of the time). ``tokenizer`` is a local tokenizer/processor folder (the tiny
Qwen2.5-VL). Each job has:
  ``command``   the argv a launcher would run (``python3 -m verl.trainer.main_ppo OVERRIDES...``)
  ``rewards``   optional list of ``{data_source, solution_str, ground_truth, extra_info}``: each
                is scored by the reward manager verl builds from the config
  ``parquet``   optional exported parquet, loaded with verl's ``RLHFDataset`` and the config's
                ``data`` section

Nothing here is the project's code: every decision is verl's.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import sys
from typing import Any


def compose(argv: list[str]) -> Any:
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if argv[1:3] != ["-m", "verl.trainer.main_ppo"]:
        raise SystemExit(f"not a verl.trainer.main_ppo command: {argv[:3]}")
    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    # main_ppo is @hydra.main(config_path="config", config_name="ppo_trainer"): the same config,
    # with the command line's overrides.
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return hydra_compose("ppo_trainer", overrides=argv[3:])


def validate(cfg: Any) -> None:
    """What main_ppo.main runs before starting Ray."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    auto_set_device(cfg)
    validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))


def reward_section(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg.reward, resolve=True)  # type: ignore[return-value]


def score_with_manager(cfg: Any, tokenizer: Any, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score each case through the reward manager verl loads (what RewardLoopWorker does)."""
    import numpy as np
    import torch
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    manager = load_reward_manager(cfg, tokenizer, reward_router_address=None, reward_model_tokenizer=None)
    out = []
    for case in cases:
        prompt_ids = tokenizer("judge this", add_special_tokens=False)["input_ids"]
        response_ids = tokenizer(case["solution_str"], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + response_ids])
        data = DataProto.from_dict(
            tensors={
                "prompts": torch.tensor([prompt_ids]),
                "responses": torch.tensor([response_ids]),
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
            },
            non_tensors={
                "data_source": np.array([case["data_source"]], dtype=object),
                "reward_model": np.array([{"style": "rule", "ground_truth": case["ground_truth"]}], dtype=object),
                "extra_info": np.array([dict(case.get("extra_info") or {})], dtype=object),
            },
        )
        result = manager.loop.run_until_complete(manager.run_single(data))
        extra = {k: (float(v) if isinstance(v, (int, float)) else str(v))
                 for k, v in result["reward_extra_info"].items()}
        out.append({"reward_score": float(result["reward_score"]), "reward_extra_info": extra})
    return out


def load_dataset(cfg: Any, tokenizer_path: str, parquet: str) -> dict[str, Any]:
    """verl's RLHFDataset on the export, with the config's data section (length filter included)."""
    from verl.trainer.ppo.utils import create_rl_dataset
    from verl.utils import hf_processor, hf_tokenizer

    tokenizer = hf_tokenizer(tokenizer_path)
    processor = hf_processor(tokenizer_path)
    from omegaconf import open_dict

    data_cfg = copy.deepcopy(cfg.data)
    with open_dict(data_cfg):  # keep verl's copy of the parquet next to it, and the filter in-process
        data_cfg.cache_dir = os.path.join(os.path.dirname(parquet), "verl-cache")
        data_cfg.filter_overlong_prompts_workers = 1
    ds = create_rl_dataset(parquet, data_cfg, tokenizer, processor, is_train=True)
    items = []
    for i in range(len(ds)):
        row = ds[i]
        parts = []
        for msg in row["raw_prompt"]:
            content = msg["content"]
            if isinstance(content, str):
                parts.append({"role": msg["role"], "types": ["text"], "text": content})
            else:
                parts.append({"role": msg["role"], "types": [c["type"] for c in content],
                              "text": "".join(c.get("text", "") for c in content if c["type"] == "text")})
        items.append({"index": int(row["index"]), "messages": parts})
    return {"rows": len(ds), "items": items}


def probe(job: dict[str, Any], tokenizer_path: str | None) -> dict[str, Any]:
    cfg = compose(job["command"])
    validate(cfg)

    import verl
    from omegaconf import OmegaConf
    from verl.experimental.reward_loop import migrate_legacy_reward_impl
    from verl.experimental.reward_loop.reward_manager.registry import REWARD_MANAGER
    from verl.trainer.ppo.reward import get_custom_reward_fn, resolve_reward_manager_cls
    from verl.utils import hf_tokenizer

    legacy = {
        "custom_reward_function": OmegaConf.to_container(cfg.custom_reward_function),
        "reward_model.reward_manager": cfg.reward_model.reward_manager,
    }
    before = reward_section(cfg)
    # The fully-async entry point migrates legacy keys; main_ppo does not. Either way the result
    # must be the same reward section.
    after = reward_section(migrate_legacy_reward_impl(copy.deepcopy(cfg)))

    fn = get_custom_reward_fn(cfg)
    raw = fn.args[0] if fn is not None else None
    try:
        manager_cls = resolve_reward_manager_cls(cfg)
        manager: dict[str, Any] = {"class": f"{manager_cls.__module__}.{manager_cls.__qualname__}",
                                   "registered_as": [k for k, v in REWARD_MANAGER.items() if v is manager_cls]}
    except Exception as exc:  # reported, so the test says which check failed
        manager = {"error": f"{type(exc).__name__}: {exc}", "registered_as": []}
    manager["registered"] = sorted(REWARD_MANAGER)
    result: dict[str, Any] = {
        "verl_version": verl.__version__,
        "trainer": {k: cfg.trainer[k] for k in ("nnodes", "n_gpus_per_node", "default_local_dir", "use_v1")},
        "model_path": cfg.actor_rollout_ref.model.path,
        "rollout": {"name": cfg.actor_rollout_ref.rollout.name, "n": cfg.actor_rollout_ref.rollout.n,
                    "tp": cfg.actor_rollout_ref.rollout.tensor_model_parallel_size},
        "data": {"train_files": cfg.data.train_files, "val_files": cfg.data.val_files},
        "legacy": legacy,
        "reward": before,
        "reward_after_migration": after,
        "reward_fn": None if raw is None else {
            "name": raw.__name__,
            "file": os.path.realpath(inspect.getsourcefile(raw) or ""),
            "kwargs": dict(fn.args[1]),
        },
        "manager": manager,
    }
    if job.get("rewards"):
        try:
            result["scores"] = score_with_manager(cfg, hf_tokenizer(tokenizer_path), job["rewards"])
        except Exception as exc:
            result["scores"] = f"{type(exc).__name__}: {exc}"
    if job.get("parquet"):
        result["dataset"] = load_dataset(cfg, tokenizer_path, job["parquet"])  # type: ignore[arg-type]
    return result


def main() -> None:
    request = json.loads(sys.stdin.read())
    results = [probe(job, request.get("tokenizer")) for job in request["jobs"]]
    print("VERL_PROBE_RESULT " + json.dumps(results, default=str))


if __name__ == "__main__":
    main()
