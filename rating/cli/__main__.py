"""``python -m rating.cli`` runs the command line too, as it did when the CLI was one module."""

import sys

from rating.cli import main

sys.exit(main())
