"""``python -m fisherlab``: the command-line interface (see :mod:`fisherlab.cli`)."""

import sys

from fisherlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
