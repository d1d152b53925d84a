"""Moved to :mod:`rating.cli.args`; this alias (the same module object) goes after one release."""

import sys

from rating.cli import args

sys.modules[__name__] = args
