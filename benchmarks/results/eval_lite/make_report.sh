#!/usr/bin/env bash
# Rebuilds this folder: the embedded lite judge on the project's dev set (offline, CPU).
# Run from the repository root: bash benchmarks/results/eval_lite/make_report.sh
# Step 1 writes the lite judge's labelled examples with their train/calib/dev split (the
# same split the shipped head was trained and calibrated on; no public benchmark data).
# Step 2 evaluates the dev rows; predictions are cached under .cache/eval_lite/cache, so a
# rerun only judges what changed.
set -euo pipefail
python -m training.lite build --dump .cache/eval_lite/dev_examples.jsonl
python -m training.eval --judge lite --dataset dev=lite:.cache/eval_lite/dev_examples.jsonl \
  --out benchmarks/results/eval_lite --cache-dir .cache/eval_lite/cache --batch-size 128 --no-predictions \
  --title "Lite judge on the project's dev set" \
  --note "dev set: the dev split of the lite judge's own examples (shared/data/public plus generated data, no public benchmark test set), written by \`python -m training.lite build --dump\`; see make_report.sh" \
  --note "the lite judge knows all 28 subcategories from training, so when a category is held out it names the hidden entry itself: its out-of-policy description score is high by construction and says little about naming unseen risks" \
  --note "categorization counts a 'safe' answer on an unsafe item as wrong; the lite model card reports accuracy on flagged items only, so its figures are higher"
