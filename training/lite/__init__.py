"""Training data and head training for the embedded lite judge (``proguard_rails.judges.lite``).

Entry points: ``python -m training.lite train`` (or ``training.lite.train:main(argv)``).
This package's ``__init__`` stays light: numpy, torch and the embedder load in the submodules.
"""

from __future__ import annotations

__all__: list[str] = []
