"""python -m liverlib: the same as the liverlib command."""

import sys

from liverlib.cli import main

sys.exit(main())
