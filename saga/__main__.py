"""``python -m saga``: the same as the ``saga`` command."""

import sys

from saga.cli import main

sys.exit(main())
