"""Module-selection priors p(r_t^k | h_{t-1}^k) (Sec. 3.1, "Module Selection Prior").

A prior is a ``PyroModule`` with ``logits(pos, feat, cand_pos, cand_feat) -> (N, K, M)``; pass one
to ``VIM(config, prior=...)`` to swap it (the ablations of the design card).

* :class:`KeyQueryPrior` (``VIMConfig(prior="keyquery")``) — the paper's: query from the slot
  state, keys from the M candidates.  Positions enter through octave features
  (``VIMConfig.prior_octaves``, :class:`~pyro_vim.nn.PositionFeatures`): with raw coordinates
  the prior needed thousands of steps to learn that moves across a frame border never happen.
* :class:`UniformPrior` (``prior="uniform"``) — no learned preference: every module equally likely.
A one-module monolithic transition is ``VIMConfig(num_modules=1)`` with either prior.  Each prior
is registered under its config name (:mod:`pyro_vim.registry`) and built by ``from_config``.

With ``interaction.velocity`` the ``feat`` a prior receives (the slot's and the candidates') is
(vel, feat); with binary modules the candidates are the M unary modules' and then every
(binary module, partner) pair's, one logit each (:mod:`pyro_vim.interactions` turns them into the
module and partner sites).
"""
import torch
from pyro.nn import PyroModule

from .nn import KeyQuery, PositionFeatures
from .registry import PRIORS, register_prior


@register_prior("keyquery")
class KeyQueryPrior(PyroModule):
    def __init__(self, state_dim: int, hidden: int = 64, key_dim: int = 32, octaves: int = 0):
        super().__init__()
        self.position = PositionFeatures(octaves)
        dim = state_dim - 2 + self.position.out_dim
        self.attention = KeyQuery(dim, dim, hidden, key_dim)

    @classmethod
    def from_config(cls, config) -> "KeyQueryPrior":
        return cls(config.latent_dim, config.update_hidden, config.keyquery_dim,
                   config.prior_octaves_resolved)

    def logits(self, pos, feat, cand_pos, cand_feat) -> torch.Tensor:
        query = torch.cat([self.position(pos), feat], -1)
        keys = torch.cat([self.position(cand_pos), cand_feat], -1)
        return self.attention(query, keys)


@register_prior("uniform")
class UniformPrior(PyroModule):
    @classmethod
    def from_config(cls, config) -> "UniformPrior":
        return cls()

    def logits(self, pos, feat, cand_pos, cand_feat) -> torch.Tensor:
        return torch.zeros(cand_pos.shape[:-1], dtype=pos.dtype, device=pos.device)


__all__ = ["KeyQueryPrior", "UniformPrior", "PRIORS"]
