"""Training data and head training for the embedded lite judge (``proguard_rails.judges.lite``).

Entry point: ``python -m training.run lite train`` (see cli.py and train.py).
This package's ``__init__`` stays light: numpy, torch and the embedder load in the submodules.
"""

from __future__ import annotations

__all__: list[str] = []
