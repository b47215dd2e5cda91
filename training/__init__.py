"""Training custom ProGuard-style guards: data -> rewards -> GRPO (TRL) or verl.

* :mod:`training.data`: sample schema, ingesters, balance reports, the out-of-policy task,
  leak-free splits, TRL and verl exports;
* :mod:`training.rewards`: the reward (format gate, labels, category, out-of-policy with
  embedding similarity), as TRL reward functions;
* :mod:`training.verl`: verl's ``compute_score`` entry point and a Ray launch script;
* :mod:`training.grpo` / ``python -m training.run --config CONFIG.yaml``: GRPO with TRL.

Importing ``training`` loads nothing heavy; torch, TRL and datasets load in the
submodules that need them. See docs/training.md.
"""
