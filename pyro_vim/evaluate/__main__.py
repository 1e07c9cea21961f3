"""``python -m pyro_vim.evaluate``: see :mod:`pyro_vim.evaluate.cli`."""
import sys

from .cli import main

sys.exit(main())
