"""``python -m proguard_rails`` = the ``proguard-rails`` command."""

import sys

from .cli import main

sys.exit(main())
