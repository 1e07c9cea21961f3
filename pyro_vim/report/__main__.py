"""``python -m pyro_vim.report``: see :mod:`pyro_vim.report.cli`."""
import sys

from .cli import main

sys.exit(main())
