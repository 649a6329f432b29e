"""``python -m app``: the same as the ``gradstep`` command."""

import sys

from app.cli import main

sys.exit(main())
