"""``python -m training.eval``: the same as ``proguard-rails eval``."""

import sys

from .cli import main

sys.exit(main())
