"""verl integration: the reward entry points (:mod:`training.verl.reward`) and a multi-node
Ray launch script (``training/verl/run_grpo.sh``). Nothing here imports verl itself."""
