"""The evaluation harness moved into the core package: ``proguard_rails.eval``.

It ships in the wheel (``proguard-rails eval`` needs it); this checkout-only alias keeps
``python -m training.eval`` and ``from training.eval import Evaluator`` working.
"""

from proguard_rails.eval import *  # noqa: F403
from proguard_rails.eval import __all__, __getattr__  # noqa: F401
