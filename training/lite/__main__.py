"""``python -m training.lite [train|build|sanity] ...``: see training/lite/train.py and sanity.py."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "sanity":
        from .sanity import main as sanity_main

        raise SystemExit(sanity_main(sys.argv[2:]))
    from .train import main

    raise SystemExit(main())
