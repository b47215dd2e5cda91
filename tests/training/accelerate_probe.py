"""Runs in a process prepared like one rank of ``accelerate launch`` (see test_configs.py):
builds the GRPO trainer from a training config and runs one optimizer step. Prints one JSON line.

argv: CONFIG [KEY=VALUE overrides...]

DeepSpeed on a CPU JIT-compiles a shared-memory allreduce kernel (C++, minutes on two cores)
the first time it initializes its communication backend; it is a speed-up for multi-process
CPU runs and irrelevant to a single process, so it is marked unavailable here. Everything
else (config parsing, ZeRO partitioning, the engine, the optimizer step) is DeepSpeed's own.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    try:
        import deepspeed.ops

        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    except ImportError:
        pass
    from training.config import load_config
    from training.grpo import build_trainer

    cfg = load_config(sys.argv[1], sys.argv[2:])
    trainer = build_trainer(cfg)
    plugin = trainer.accelerator.state.deepspeed_plugin
    result = {
        "deepspeed": bool(getattr(trainer, "is_deepspeed_enabled", False)),
        "zero_stage": plugin.zero_stage if plugin is not None else None,
        "distributed_type": str(trainer.accelerator.state.distributed_type),
        "bf16": trainer.args.bf16,
    }
    trainer.train()
    result["global_step"] = trainer.state.global_step
    result["loss"] = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    print("ACCELERATE_PROBE " + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
