"""``python -m training.eval``: the same as ``proguard-rails eval`` (``proguard_rails.eval``)."""

import sys

from proguard_rails.eval.cli import main

sys.exit(main())
