"""``python -m pyro_vim.pretrained``: see :mod:`pyro_vim.pretrained.cli`."""
import sys

from .cli import main

sys.exit(main())
