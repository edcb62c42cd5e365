"""``python -m fakesysfs.cli``: the ``fakesysfs`` command."""

import sys

from fakesysfs.cli import main

sys.exit(main())
