"""Numeric helpers of the networks (Pyro-free): :func:`inverse_softplus`."""
import math

__all__ = ["inverse_softplus"]


def inverse_softplus(y: float) -> float:
    """The ``x`` with ``softplus(x) = log(1 + exp(x)) = y`` (``y > 0``): the bias that makes a
    softplus-activated output start at ``y``."""
    return math.log(math.expm1(y))
