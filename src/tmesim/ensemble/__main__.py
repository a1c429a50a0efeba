"""``python -m tmesim.ensemble compare|sweep ...``: the ensemble commands on their own."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
