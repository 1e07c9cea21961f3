"""Training: the library loop (:mod:`pyro_vim.train.trainer`) and its command line
(:mod:`pyro_vim.train.cli`, run as ``python -m pyro_vim.train``).

Everything the loop defines is importable from here, as it was when this package was one
module: ``from pyro_vim.train import Trainer, train, NonFiniteError, train_seed, ...``.
Importing the package does not import the command line.
"""
from . import trainer as _trainer
from .trainer import (
    EVAL_SEED_OFFSET,
    RANK_SEED_STRIDE,
    TERMS,
    TRAIN_SEED_STRIDE,
    NonFiniteError,
    Trainer,
    default_device,
    eval_seed,
    make_generator,
    train,
    train_seed,
)

__all__ = ["Trainer", "train", "NonFiniteError", "train_seed", "eval_seed", "default_device",
           "make_generator", "TERMS", "TRAIN_SEED_STRIDE", "RANK_SEED_STRIDE",
           "EVAL_SEED_OFFSET"]


def __getattr__(name):
    """Any other name the loop's module holds (what ``pyro_vim.train`` held as one module)."""
    try:
        return getattr(_trainer, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
