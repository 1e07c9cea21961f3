"""Binary modules and the partner choice: interacting objects in VIM's Pyro program.

The paper's modules are unary (Sec. 3: "the modules ... can have a predefined number of
arguments.  For our experiments, we only use unary modules"); its conclusion names n-ary modules
as the next step.  With ``interaction.num_binary_modules`` B > 0 a slot k may instead apply one
of B binary modules g_b(h^k, h^j) to itself *together with a partner slot* j (a collision needs
the other ball).  A transition then samples, per slot, a (module, partner) pair in two sites:

* ``r_{t}`` over the M + B modules (unary first), as before;
* ``p_{t}`` over the K - 1 other slots and "none" (K categories, "none" last; slot k's
  category j is slot ``others[k, j]``, :attr:`Interactions.others`).

Both are :class:`~pyro_vim.distributions.SafeRelaxedOneHotCategorical` at the model's
temperature, in the model and the guide alike.  Their distributions come from one score per
(module, partner) pair: the selection prior (or the guide's selection scorer) scores every
candidate, the M unary candidates s_m = f_m(h^k) and the B x K pair candidates
s_{b,j} = g_b(h^k, h^j) (j = "none": the binary module without a partner), exactly as it scores
the unary candidates alone; the prior's key-query is then between the slot and (module candidate
given partner), and the slot-attention guide's distance term between the observed position and
each pair's candidate.  With L_m the unary scores and L_{b,j} the pair scores, the joint over the
valid pairs (m, none) and (b, j) is the softmax of these scores, factorised as

    r:     logits (L_m, logsumexp_j L_{b,j})             (the module, partner marginalised)
    p | r: probs  sum_m r_m [j = none] + sum_b r_b softmax_j(L_{b,j})

(``interaction.pair_choice="joint"``).  With ``"module_first"`` a binary module's ``r`` logit is
logsumexp_j L_{b,j} - log K instead: the module is chosen first, at equal odds with the unary
modules when all candidates score alike (not K times their odds, one per partner), then its
partner; p | r is unchanged.

p | r is exact for a hard (one-hot) r: a unary module's partner is "none", a binary module's
the softmax of its pair scores; a relaxed r mixes these conditionals.  The step then mixes the
candidates with weight r_m for unary module m and r_b p_j for pair (b, j), which sums to one.

This module holds the binary networks (:class:`~pyro_vim.nn.BinaryModules`) and these maps;
:meth:`pyro_vim.model.VIM.transition_step` samples the sites, so model and guide share the step.
"""
from __future__ import annotations

import math

import torch
from pyro.nn import PyroModule

from .nn import BinaryModules

__all__ = ["Interactions", "others_index"]


def others_index(num_slots: int) -> torch.Tensor:
    """(K, K-1) long: row k lists the slots other than k, in order."""
    k = num_slots
    full = torch.arange(k).expand(k, k)
    keep = ~torch.eye(k, dtype=torch.bool)
    return full[keep].reshape(k, k - 1)


class Interactions(PyroModule):
    """B binary modules and the (module, partner) choice (module docstring)."""

    def __init__(self, num_slots: int, num_modules: int, num_binary: int, slot_dim: int,
                 hidden: int = 64, init_scale: float = 0.1, velocity: bool = False,
                 pair_choice: str = "joint", partner_init: str = "random"):
        super().__init__()
        if num_binary < 1:
            raise ValueError(f"Interactions needs num_binary >= 1, got {num_binary}")
        if pair_choice not in ("joint", "module_first"):
            raise ValueError(f"pair_choice must be 'joint' or 'module_first', got {pair_choice!r}")
        self.pair_choice = pair_choice
        self.num_slots, self.num_modules, self.num_binary = num_slots, num_modules, num_binary
        self.binary = BinaryModules(num_binary, slot_dim, hidden, init_scale=init_scale,
                                    velocity=velocity, partner_init=partner_init)
        #: (K, K-1): slot k's partner category j < K-1 is slot ``others[k, j]``
        self.register_buffer("others", others_index(num_slots), persistent=False)

    @classmethod
    def from_config(cls, config) -> "Interactions":
        pixel = 2.0 / (config.image_size - 1)
        return cls(config.num_slots, config.num_modules, config.num_binary_modules,
                   config.slot_dim, config.module_hidden,
                   init_scale=config.module_init_scale * pixel, velocity=config.velocity,
                   pair_choice=config.pair_choice, partner_init=config.partner_init)

    @property
    def num_partners(self) -> int:
        """K: the categories of ``p_{t}`` (K - 1 other slots, then "none")."""
        return self.num_slots

    def pair_updates(self, h):
        """The binary modules' updates of every slot with every partner: dpos (N, K, B*K, 2),
        dfeat (N, K, B*K, D), dvel (N, K, B*K, 2) or None; candidate b * K + j is module b
        with partner category j (j = K - 1: "none")."""
        n, k = h.pos.shape[:2]

        def partners(x):             # (N, K, ·) -> (N, K, K, ·): the others, then zeros
            other = x[:, self.others]                                  # (N, K, K-1, ·)
            return torch.cat([other, torch.zeros_like(other[:, :, :1])], 2)

        def own(x):
            return x.unsqueeze(2).expand(n, k, k, x.shape[-1])

        vel = h.vel
        present = torch.cat([h.pos.new_ones(k - 1), h.pos.new_zeros(1)]).expand(n, k, k)
        dpos, dfeat, dvel = self.binary(
            (own(h.pos), own(h.feat), None if vel is None else own(vel)),
            (partners(h.pos), partners(h.feat), None if vel is None else partners(vel)),
            present)                                                   # (N, K, K, B, ·)

        def flat(x):                 # (N, K, K_partner, B, ·) -> (N, K, B * K_partner, ·)
            return None if x is None else x.transpose(2, 3).flatten(2, 3)

        return flat(dpos), flat(dfeat), flat(dvel)

    def split_scores(self, scores: torch.Tensor):
        """(N, K, M + B*K) candidate scores -> unary (N, K, M), pairs (N, K, B, K)."""
        m = self.num_modules
        return scores[..., :m], scores[..., m:].unflatten(-1, (self.num_binary,
                                                                self.num_partners))

    def module_logits(self, scores: torch.Tensor) -> torch.Tensor:
        """Logits (N, K, M + B) of ``r_{t}``: the unary scores and each binary module's score
        with the partner marginalised.

        ``pair_choice="joint"``: logsumexp over the K partner categories, so that (r, p) is the
        softmax over all (module, partner) pairs; at equal scores a binary module then has K
        times a unary module's odds (one per partner).  ``"module_first"``: the log of the mean
        over partners (logsumexp - log K), a module chosen at equal odds when its candidates
        score alike, then its partner by the pair scores (p | r is the same)."""
        unary, pairs = self.split_scores(scores)
        binary = pairs.logsumexp(-1)
        if self.pair_choice == "module_first":
            binary = binary - math.log(self.num_partners)
        return torch.cat([unary, binary], -1)

    def partner_logits(self, scores: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Logits (N, K, K) of ``p_{t}`` given the module choice ``r`` (N, K, M + B): log of
        sum_m r_m [none] + sum_b r_b softmax_j(L_{b,j}) (clamped at the smallest normal float,
        so a hard unary choice gives "none" with probability one and finite logits)."""
        m = self.num_modules
        _, pairs = self.split_scores(scores)
        probs = (r[..., m:, None] * pairs.softmax(-1)).sum(-2)             # (N, K, K)
        none = torch.zeros_like(probs[..., :1]).expand_as(probs).clone()
        none[..., -1] = 1.0
        probs = probs + r[..., :m].sum(-1, keepdim=True) * none
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log()

    def pair_weights(self, r: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Mixing weights (N, K, M + B*K) of the candidates: r_m for unary module m, r_b p_j
        for binary module b with partner j (both as mixed by :mod:`pyro_vim.choices`)."""
        m = self.num_modules
        pairs = r[..., m:, None] * p[..., None, :]                        # (N, K, B, K)
        return torch.cat([r[..., :m], pairs.flatten(-2)], -1)

    def partner_slots(self, choice: torch.Tensor) -> torch.Tensor:
        """Partner categories (N, ..., K) long, the slot axis last -> the partner's slot
        index, -1 for "none"."""
        k = self.num_slots
        table = torch.cat([self.others, torch.full((k, 1), -1, dtype=self.others.dtype,
                                                   device=self.others.device)], 1)   # (K, K)
        slot = torch.arange(k, device=choice.device).expand_as(choice)
        return table.to(choice.device)[slot, choice]
