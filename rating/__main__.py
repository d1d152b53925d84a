"""``python -m rating`` runs the command line."""

import sys

from rating.cli import main

sys.exit(main())
