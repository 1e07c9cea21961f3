"""Binary transition modules: a slot's update given a partner slot (Pyro-free).

B modules, each an MLP (the unary modules' sizes, stacked weights as in
:class:`~pyro_vim.nn.transition.TransitionModules`) of a pair (own state, partner state) ->
(dpos, [dvel,] dfeat), the update of the *own* slot.  The partner enters relative to the slot
(its position and velocity minus the slot's), so a rule of contact is one of the offset, and the
slot's own absolute position stays an input (walls).  A missing partner ("none") is the partner
input zeroed with a presence flag of 0, so every module is defined for every choice of the
partner site ``p_{t}`` (:mod:`pyro_vim.interactions`).

``partner_init="zero"`` starts the first layer's weights on the partner input at zero: a module
then gives the same update with every partner (and with none) until training finds a use for
the partner, so its K pair candidates do not start out as K random draws around the slot, one
of which lands nearer the observation than a unary module's single candidate.
"""
import math

import torch
from torch import nn

from .transition import StackedLinear


class BinaryModules(nn.Module):
    def __init__(self, num_modules: int, slot_dim: int, hidden: int = 64,
                 init_scale: float = 0.1, velocity: bool = False, partner_init: str = "random"):
        super().__init__()
        if partner_init not in ("random", "zero"):
            raise ValueError(f"partner_init must be 'random' or 'zero', got {partner_init!r}")
        self.num_modules, self.slot_dim = num_modules, slot_dim
        self.velocity = bool(velocity)
        motion = 4 if velocity else 2
        own, partner = motion + slot_dim, motion + slot_dim + 1
        self.norm = nn.LayerNorm(slot_dim)
        self.l1 = StackedLinear(num_modules, own + partner, hidden)
        self.l2 = StackedLinear(num_modules, hidden, hidden)
        self.l3 = StackedLinear(num_modules, hidden, motion + slot_dim, weight_scale=0.01)
        with torch.no_grad():
            angles = torch.rand(num_modules) * (2 * math.pi)
            directions = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
            self.l3.bias.zero_()
            self.l3.bias[:, :2] = init_scale * directions
            if velocity:
                self.l3.bias[:, 2:4] = init_scale * directions
            if partner_init == "zero":      # start as a unary module that ignores the partner
                self.l1.weight[:, own:].zero_()

    def forward(self, own, partner, present: torch.Tensor):
        """``own`` = (pos (..., 2), feat (..., D), vel (..., 2) or None) of the slot,
        ``partner`` the same of its partner, every tensor of the same batch shape ``...``;
        ``present`` (...,) 1 for a partner, 0 for "none" (its inputs are then zeroed).  Returns
        dpos (..., B, 2), dfeat (..., B, D) and dvel (..., B, 2) or None."""
        pos, feat, vel = own
        p_pos, p_feat, p_vel = partner
        if self.velocity != (vel is not None) or (vel is None) != (p_vel is None):
            raise ValueError(f"these modules were built with velocity={self.velocity}")
        flag = present.to(pos.dtype).unsqueeze(-1)
        own_in = [pos] + ([] if vel is None else [vel]) + [self.norm(feat)]
        rel = [p_pos - pos] + ([] if vel is None else [p_vel - vel]) + [self.norm(p_feat)]
        x = torch.cat(own_in + [torch.cat(rel, -1) * flag, flag], -1)
        x = x.unsqueeze(-2).expand(*x.shape[:-1], self.num_modules, x.shape[-1])
        x = self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))
        if vel is None:
            return x[..., :2], x[..., 2:], None
        return x[..., :2], x[..., 4:], x[..., 2:4]
