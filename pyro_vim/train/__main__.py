"""``python -m pyro_vim.train``: the training command line (:mod:`pyro_vim.train.cli`)."""
from pyro_vim.distributed import exit_process
from pyro_vim.train.cli import cli

exit_process(cli())
