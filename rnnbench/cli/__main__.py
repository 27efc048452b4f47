"""``python -m rnnbench.cli``."""

import sys

from rnnbench.cli import main

sys.exit(main())
