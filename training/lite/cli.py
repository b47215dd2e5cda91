"""``python -m training.run lite COMMAND`` (or ``python -m training.lite COMMAND``).

Commands: ``train`` (default: corpus, fine-tuning, export, calibration, evaluation, model
card), ``build`` (corpus summary), ``models`` (fine-tuning runs only), ``report`` (re-score
the shipped model and rewrite the card), ``sanity`` (the hand-written sanity set).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "sanity":
        from .sanity import main as sanity_main

        return int(sanity_main(args[1:]) or 0)
    from .train import main as train_main

    return train_main(args)


__all__ = ["main"]
