"""Effect handlers over VIM's Pyro programs.

:class:`UseMeans` turns a stochastic run into its central one: relaxed one-hot sites take their
hard mode (the one-hot of the argmax) and Gaussian sites their mean.  Evaluation (``VIM.infer``:
argmax module choices and mean updates) is the guide run under this handler, and deterministic
rollouts are the model run under it; neither program has a branch for it.
"""
from typing import Iterable, Optional

from pyro.poutine.messenger import Messenger
from pyro.poutine.subsample_messenger import _Subsample

from .distributions import SafeRelaxedOneHotCategorical


class UseMeans(Messenger):
    """Replace the sampled value of latent sites by a central value.

    Gaussian sites (``z_0``, ``z_{t}``) take their mean, relaxed one-hot sites (``r_{t}``) their
    hard mode.  ``names``: the sites to handle (default: every latent site).  Sites whose value is
    already fixed by an inner handler (``condition``, ``replay``) or that are observed are left
    alone.  ``UseMeans(["z_1", "z_2"])(vim.model)``.
    """

    def __init__(self, names: Optional[Iterable[str]] = None):
        super().__init__()
        self.names = None if names is None else set(names)

    def _pyro_sample(self, msg) -> None:
        if msg["is_observed"] or msg["value"] is not None or isinstance(msg["fn"], _Subsample):
            return                      # observed, fixed by an inner handler, or a plate
        if self.names is not None and msg["name"] not in self.names:
            return
        fn = msg["fn"]
        value = fn.probs_mode if isinstance(fn, SafeRelaxedOneHotCategorical) else fn.mean
        msg["value"] = value.expand(fn.shape())
        msg["done"] = True
