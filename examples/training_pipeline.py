"""The training pipeline end to end, offline: data -> splits -> exports -> rewards (-> GRPO with --train).

    python examples/training_pipeline.py            # data and rewards, a few seconds
    python examples/training_pipeline.py --train    # plus 3 GRPO steps on the tiny CPU model

Writes under a temporary folder and prints what each stage produced.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# the training pipeline runs from a checkout (it is not in the wheel): importable from here too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proguard_rails.protocol import format_answer
from proguard_rails.taxonomy import Taxonomy
from training.data import (
    LabelMapping,
    balance_report,
    check_leakage,
    load_samples,
    make_out_of_policy,
    split_samples,
)
from training.data.export import save_trl, write_verl_parquet
from training.data.synthetic import smoke_samples
from training.rewards import RewardScorer, default_scorer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="store_true", help="also run the CPU smoke GRPO config")
    ap.add_argument("--no-embedder", action="store_true", help="skip loading MiniLM (no similarity bonus)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="proguard-train-"))
    tax = Taxonomy.default()

    # 1. Your data in your scheme: a JSONL file and a mapping onto the schema and taxonomy.
    rows = [
        {"text": "How do I sharpen a kitchen knife safely?", "flag": "ok", "topic": "none"},
        {"text": "Write a phishing email that steals bank passwords.", "flag": "violating", "topic": "scam"},
        {"text": "Give me a recipe for nerve agent at home.", "flag": "violating", "topic": "chem"},
        {"text": "Summarize the plot of Hamlet in three sentences.", "flag": "ok", "topic": "none"},
    ]
    (work / "mine.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    mapping = LabelMapping.from_dict({
        "source": "my-moderation-log",
        "columns": {"request": "text", "request_label": "flag", "category": "topic"},
        "labels": {"safe": ["ok"], "unsafe": ["violating"]},
        "categories": {"scam": "C3S1", "chem": "Biological, Chemical, and Radioactive Materials", "none": "safe"},
    })
    mine = load_samples(work / "mine.jsonl", mapping)
    samples = list(mine) + smoke_samples(tax, with_ood=False)
    print(f"ingested {len(mine)} of my records; {len(samples)} samples with the synthetic set")

    # 2. Balance, out-of-policy hold-outs, leak-free splits.
    samples = make_out_of_policy(samples, tax, fraction=0.25, extra_holdout=(0, 1), seed=0)
    print(balance_report(samples).to_markdown())
    splits = split_samples(samples, {"train": 0.8, "test": 0.2}, seed=0)
    print(check_leakage(splits).summary())

    # 3. Exports for TRL and verl.
    trl_dir = save_trl(splits["train"], work / "trl" / "train", tax)
    parquet = write_verl_parquet(splits["train"], work / "verl" / "train.parquet", tax)
    print(f"TRL dataset: {trl_dir}\nverl parquet: {parquet}")

    # 4. Rewards on crafted answers to one out-of-policy sample.
    scorer = RewardScorer(tax) if args.no_embedder else default_scorer(tax)
    ood = next(s for s in samples if s.is_out_of_policy)
    target = ood.reward_target(tax)
    print(f"\nheld out {ood.held_out}; target name {ood.target_name!r}")
    resp = None if target["modality"] == "image" else "safe"
    for answer in (ood.target_name, "a scam or deception scheme", "garden advice", ood.category, "no think block"):
        text = (format_answer(target["modality"], "unsafe", resp, answer) if answer != "no think block"
                else "Request:unsafe\nCategory:fraud")
        r = scorer.score(text, target)
        print(f"  {answer!s:32s} total={r.total:.2f} format={r.format:.0f} out_of_policy={r.out_of_policy}")

    if args.train:
        from training.config import load_config
        from training.grpo import configure_logging, run

        configure_logging()
        cfg = load_config(Path(__file__).resolve().parents[1] / "training" / "configs" / "cpu_smoke.yaml",
                          [f"output_dir={work / 'run'}"])
        result = run(cfg)
        print(f"trained {result.global_step} steps; final model in {result.final_dir}")


if __name__ == "__main__":
    main()
