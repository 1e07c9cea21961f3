"""Train VIM on the Random Walk dataset (paper Sec. 5.1).

    python examples/train_random_walk.py                      # cpu preset (default without CUDA)
    python examples/train_random_walk.py --preset paper --device cuda
    python examples/train_random_walk.py --out runs/rw --resume
    python examples/train_random_walk.py --set prior=uniform data.step=4 data.num_objects=4 \
        num_slots=5                                         # any config key (see --keys)
    torchrun --nproc_per_node=2 examples/train_random_walk.py --out runs/ddp   # data-parallel

This script is ``python -m pyro_vim.train`` (:mod:`pyro_vim.train.cli`) with ``--out``
defaulting to ``runs/random_walk``: it takes the same options (``--data DIR`` included).
Writes OUT/checkpoint.pt and OUT/log.jsonl and prints the final rule-module accuracy.  Bad
arguments (a non-positive size, an OUT that already holds a run without --resume, --resume
without a checkpoint, a checkpoint of another config, ...) stop with ``error: ...`` and exit
status 2 before anything is written: OUT is not created and an existing run is left untouched.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.distributed import exit_process  # noqa: E402
from pyro_vim.train import cli  # noqa: E402

build_config = cli.build_config


def _parser():
    return cli.build_parser(prog=os.path.basename(__file__),
                            description=__doc__.splitlines()[0], out_default="runs/random_walk")


def check_args(args, parser=None) -> None:
    """Reject impossible arguments before anything is written (exit status 2)."""
    cli.check_args(args, parser or _parser())


def parse_args(argv=None):
    """Parse and check the command line (exit status 2 with a message on bad arguments)."""
    return cli.parse_args(argv, _parser())


def main(args) -> dict:
    """Train as ``args`` say; returns the step, the checkpoint and the final metrics."""
    return cli.main(args, _parser())


if __name__ == "__main__":
    exit_process(cli.cli(parser=_parser()))
