"""``python -m training.lite [train|build] ...``: see training/lite/train.py."""

from __future__ import annotations

from .train import main

if __name__ == "__main__":
    raise SystemExit(main())
