"""Variational guides q(z_0, r, z | x) (Sec. 3.2, Eq. 3).

A guide is a ``PyroModule`` with ``selection_logits`` and ``update_posterior``; ``VIM.guide`` runs
the recurrence and calls them at every step, so a guide can be swapped with
``VIM(config, guide=...)``.

:class:`SlotAttentionGuide` (default, ``VIMConfig(guide="slot_attention")``): at each step one
slot-attention step from the slots h_{t-1} onto the encoded target frame x_t gives each slot its
grouping x̂_t^k (Eq. 4), here a pair (observed position p̂, features). The module-selection
posterior scores every candidate s_m = f_m(h_{t-1}) by how well it explains that observed state: a
distance attention ``-|p̂ - pos(s_m)|^2 / (2 tau^2)`` plus a learned key-query term between x̂ and
the candidates. The latent-update posterior is N(MLP([f(h); x̂])) except that its position mean is
the residual p̂ - pos(candidate), so that the slots keep tracking the observed objects.

:class:`KeyQueryGuide` (ablation, ``VIMConfig(guide="keyquery")``): the paper's plain key-query
selection between x̂ features and the candidates, without the position distance.
"""
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from .nn import MLP, KeyQuery
from .registry import GUIDES, register_guide


@register_guide("slot_attention")
class SlotAttentionGuide(PyroModule):
    def __init__(self, slot_dim: int, hidden: int = 64, key_dim: int = 32,
                 position_score: bool = True, scale_pixels: float = 1.0,
                 image_size: int = 32):
        super().__init__()
        state = 2 + slot_dim
        self.position_score = position_score
        self.keyquery = KeyQuery(state + slot_dim, state, hidden, key_dim)
        pixel = 2.0 / (image_size - 1)
        # a fixed distance scale: learned, the relaxed module KL pushes it up until the choices
        # blur and the modules collapse onto their mean (measured; see BENCHMARKS.md)
        self.register_buffer("tau", torch.tensor(scale_pixels * pixel))
        self.kq_gain = nn.Parameter(torch.tensor(0.1 if position_score else 1.0))
        self.post = MLP(2 * state + slot_dim + 2, hidden, 2 * state)
        with torch.no_grad():
            self.post[-1].weight.mul_(0.01)
            self.post[-1].bias.zero_()
            self.post[-1].bias[state:].fill_(-3.0)

    @classmethod
    def from_config(cls, config):
        """The guide the config describes (its sizes and the selection scale)."""
        return cls(config.slot_dim, hidden=config.update_hidden, key_dim=config.keyquery_dim,
                   scale_pixels=config.selection_scale_resolved, image_size=config.image_size)

    def selection_logits(self, h, cand_pos, cand_feat, obs):
        """(N, K, M) logits of q(r_t | h_{t-1}, x_t)."""
        query = torch.cat([obs.pos, obs.feat, obs.update], -1)
        keys = torch.cat([cand_pos, cand_feat], -1)
        logits = self.kq_gain * self.keyquery(query, keys)
        if self.position_score:
            dist2 = (obs.pos.unsqueeze(-2) - cand_pos).pow(2).sum(-1)
            logits = logits - 0.5 * dist2 / self.tau.pow(2)
        return logits

    def stay_logits(self, logits, cand_pos, obs):
        """(N, K, 1) logit of "stay" for a VIM-k planner at inference: ``cand_pos`` (N, K, M + 1,
        2) holds the M candidates and, last, the unchanged position.  "Stay" is the preferred
        module re-scored by distance: it wins exactly when keeping the slot where it is lies
        closer to the observation (the learned key-query term never saw an unchanged state, so
        it may not veto it)."""
        m = logits.shape[-1]
        best = logits.argmax(-1, keepdim=True)
        d2 = (obs.pos.unsqueeze(-2) - cand_pos).pow(2).sum(-1)
        return logits.gather(-1, best) + 0.5 * (d2[..., :m].gather(-1, best)
                                                - d2[..., m:]) / self.tau.pow(2)

    def update_posterior(self, h, mix_pos, mix_feat, obs, final: bool = True):
        """loc, scale of q(z_t | r_t, h_{t-1}, x_t) over the state (pos, feat).  ``final=False``
        (an intermediate iteration of a VIM-k transition): the position mean is 0, the slot stays
        where the module put it and the next iteration's selection continues from there."""
        residual = obs.pos - mix_pos
        x = torch.cat([mix_pos, mix_feat, obs.pos, obs.feat, obs.update, residual], -1)
        out = self.post(x)
        state = out.shape[-1] // 2
        loc = out[..., :state]
        if self.position_score:
            # the position's posterior mean is the observed position: a learned correction here
            # drifted towards the modules' prediction (it lowers the Gaussian KL) and the slots
            # stopped tracking (measured: tracking error 1.2 -> 2.0 px over 300 steps)
            loc = torch.cat([residual if final else torch.zeros_like(residual), loc[..., 2:]],
                            -1)
        scale = F.softplus(out[..., state:]) + 1e-4
        return loc, scale


@register_guide("keyquery")
class KeyQueryGuide(SlotAttentionGuide):
    """Ablation: the paper's key-query selection on x̂ features, no position distance."""

    def __init__(self, slot_dim: int, **kwargs):
        kwargs["position_score"] = False
        super().__init__(slot_dim, **kwargs)


__all__ = ["SlotAttentionGuide", "KeyQueryGuide", "GUIDES"]
