"""The seed of the evaluation data: disjoint from every seed training draws.

The evaluation data are generated with seed :data:`DEFAULT_SEED_OFFSET` + ``config.seed``
(:func:`default_seed`), a seed that training (``config.seed * 10_000_000 + step``) and the
trainer's own evaluation (``4_000_000_000 + config.seed``) never use.
"""
from __future__ import annotations

__all__ = ["DEFAULT_SEED_OFFSET", "default_seed"]


#: Default data seed = DEFAULT_SEED_OFFSET + config.seed (disjoint from the trainer's seeds).
DEFAULT_SEED_OFFSET = 3_000_000_000


def default_seed(config) -> int:
    """The default evaluation data seed of a config: never a training or trainer-eval seed."""
    return DEFAULT_SEED_OFFSET + int(config.seed)
