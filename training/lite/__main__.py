"""``python -m training.lite [train|build|models|report|sanity] ...``: see training/lite/cli.py."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
