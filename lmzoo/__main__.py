"""`python -m lmzoo` is the `lmzoo` command."""

import sys

from lmzoo.cli import main

sys.exit(main())
