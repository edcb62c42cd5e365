"""``python -m fakesysfs``: the ``fakesysfs`` command."""

import sys

from fakesysfs.cli import main

sys.exit(main())
