"""``python -m proguard_rails.eval`` (or ``python -m training.eval`` in a checkout): the same as ``proguard-rails eval``."""

import sys

from .cli import main

sys.exit(main())
