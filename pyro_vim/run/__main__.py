"""``python -m pyro_vim.run`` (also under ``torchrun -m``): see :mod:`pyro_vim.run.cli`."""
from ..distributed import exit_process
from .cli import main

exit_process(main())
