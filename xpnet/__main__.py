"""``python -m xpnet``: the same as the ``xpnet`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
