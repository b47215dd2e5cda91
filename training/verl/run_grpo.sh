#!/usr/bin/env bash
# GRPO with verl 0.9 on a Ray cluster (one or many nodes), from the parquet files written by
#   python -m training.run export --data ... --out-dir EXPORTS --format verl
#
# verl pins an older transformers than TRL: install it in its own environment, with
# proguard-rails for the reward (`verl` extra: verl>=0.9,<0.10 plus the reward's embedder):
#   python -m venv ~/verl-env && . ~/verl-env/bin/activate
#   pip install "proguard-rails[verl]" vllm        # vllm: the version verl 0.9.x was built with
#
# Single node: run this script (verl starts a local Ray instance).
# Multi-node (docs/training.md, "verl on a Ray cluster"): `ray start --head` on the head node,
# `ray start --address=HEAD_IP:6379` on every worker, then on the head node:
#   NNODES=2 GPUS_PER_NODE=8 MODEL_PATH=/shared/models/ProGuard-7B \
#   TRAIN=/shared/exports/verl/train.parquet VAL=/shared/exports/verl/test.parquet \
#   OUT=/shared/checkpoints/proguard-7b-grpo bash training/verl/run_grpo.sh
# MODEL_PATH, TRAIN/VAL, OUT, the reward file and a non-default EMBEDDING_MODEL are read by Ray
# actors on any node: keep them on a shared filesystem (or at the same path on every node).
#
# Extra Hydra overrides go at the end: bash training/verl/run_grpo.sh trainer.total_epochs=2
# DRY_RUN=1 prints the command (one argument per line) instead of running it; the tests compose
# verl's own config from exactly these arguments.
set -euo pipefail

: "${MODEL_PATH:?set MODEL_PATH to a local Qwen2.5-VL / ProGuard checkpoint folder}"
: "${TRAIN:?set TRAIN to the exported train parquet}"
VAL=${VAL:-$TRAIN}
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
ROLLOUT_N=${ROLLOUT_N:-8}                 # GRPO group size
ROLLOUT_TP=${ROLLOUT_TP:-2}               # vLLM tensor parallel size
TRAIN_BATCH=${TRAIN_BATCH:-256}           # prompts per step (x ROLLOUT_N completions)
MINI_BATCH=${MINI_BATCH:-64}
MICRO_BATCH_PER_GPU=${MICRO_BATCH_PER_GPU:-4}
MAX_PROMPT=${MAX_PROMPT:-4096}            # the released system prompt is ~1.5k tokens, images add more
MAX_RESPONSE=${MAX_RESPONSE:-1024}
LR=${LR:-1e-6}
EMBEDDING_MODEL=${EMBEDDING_MODEL:-minilm}  # or a BGE-M3 folder present on every node (the paper's choice)
REWARD_WORKERS=${REWARD_WORKERS:-8}       # verl reward-loop workers (each loads the embedder once)
OUT=${OUT:-checkpoints/proguard-verl-grpo}
PROJECT=${PROJECT:-proguard-rails}
EXPERIMENT=${EXPERIMENT:-grpo-$(basename "$MODEL_PATH")}
PYTHON=${PYTHON:-python3}

# The reward entry point: this repository's file, loaded by path inside verl's reward workers.
REWARD_FILE=${REWARD_FILE:-$("$PYTHON" -c 'import training.verl.reward as m; print(m.__file__)')}

# verl 0.9 reads the reward settings under `reward.` (the top-level `custom_reward_function.*`
# and `reward_model.reward_manager` are legacy keys that main_ppo never migrates) and runs
# registered reward-loop managers only: `naive` calls compute_score once per sample.
ARGS=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    algorithm.norm_adv_by_std_in_grpo=True
    data.train_files="$TRAIN"
    data.val_files="$VAL"
    data.prompt_key=prompt
    data.image_key=images
    data.train_batch_size="$TRAIN_BATCH"
    data.max_prompt_length="$MAX_PROMPT"
    data.max_response_length="$MAX_RESPONSE"
    data.filter_overlong_prompts=True
    data.truncation=error
    reward.num_workers="$REWARD_WORKERS"
    reward.reward_manager.source=register
    reward.reward_manager.name=naive
    reward.custom_reward_function.path="$REWARD_FILE"
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.embedding_model="$EMBEDDING_MODEL"
    actor_rollout_ref.model.path="$MODEL_PATH"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.actor.optim.lr="$LR"
    actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH"
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"
    actor_rollout_ref.actor.use_kl_loss=True
    actor_rollout_ref.actor.kl_loss_coef=0.01
    actor_rollout_ref.actor.kl_loss_type=low_var_kl
    actor_rollout_ref.actor.clip_ratio=0.1
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.fsdp_config.param_offload=False
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.n="$ROLLOUT_N"
    actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu="$MICRO_BATCH_PER_GPU"
    actor_rollout_ref.ref.fsdp_config.param_offload=True
    trainer.logger='["console"]'
    trainer.project_name="$PROJECT"
    trainer.experiment_name="$EXPERIMENT"
    trainer.nnodes="$NNODES"
    trainer.n_gpus_per_node="$GPUS_PER_NODE"
    trainer.save_freq=50
    trainer.test_freq=50
    trainer.total_epochs=1
    trainer.default_local_dir="$OUT"
)

CMD=("$PYTHON" -m verl.trainer.main_ppo "${ARGS[@]}" "$@")
if [[ "${DRY_RUN:-0}" == 1 ]]; then
    printf '%s\n' "${CMD[@]}"
    exit 0
fi
exec "${CMD[@]}"
