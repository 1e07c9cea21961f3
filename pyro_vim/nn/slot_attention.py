"""Slot attention (Locatello et al., 2020) with an explicit position per slot.

Each slot is a pair (pos, feat): ``pos`` (.., 2) in normalised image coordinates and ``feat``
(.., D).  Keys and values are the input features' projections plus a projection of the pixel
coordinates *relative to the slot's position* (slot-centric reference frames, in the spirit of
invariant slot attention, Biza et al. 2023), and each iteration moves ``pos`` to the
attention-weighted mean of the pixel coordinates.  The relative part uses the small fixed
features phi(u) = (u_x, u_y, u_x^2, u_y^2, u_x u_y) of u = (pixel - pos) / scale, so keys and
values stay separable: k_ki = W_k e_i + A_k phi(u_ki).  With a learned quadratic term each slot
can attend to a neighbourhood of its position, and the cost stays O(N K HW D).

The same step serves discovery (several iterations from a learned per-slot initialisation on the
context frame, p(z_0 | c)) and tracking (one step from the slots h_{t-1} onto frame t, Eq. 4).
"""
import math
from typing import NamedTuple

import torch
from torch import nn


def relative_features(grid: torch.Tensor, pos: torch.Tensor, scale: float) -> torch.Tensor:
    """phi((grid - pos) / scale): grid (HW, 2), pos (N, K, 2) -> (N, K, HW, 5)."""
    u = (grid[None, None] - pos[:, :, None]) / scale
    ux, uy = u[..., 0], u[..., 1]
    return torch.stack([ux, uy, ux * ux, uy * uy, ux * uy], -1)


class SlotAttentionOutput(NamedTuple):
    pos: torch.Tensor     # (N, K, 2)
    feat: torch.Tensor    # (N, K, D)
    attn: torch.Tensor    # (N, K, HW) softmax over slots
    update: torch.Tensor  # (N, K, D) attention-weighted values: the slot's grouping x^k of Eq. 4


class SlotAttention(nn.Module):
    def __init__(self, num_slots: int, in_dim: int, slot_dim: int, hidden_dim: int = 64,
                 rel_scale: float = 0.25, eps: float = 1e-8):
        super().__init__()
        self.num_slots, self.slot_dim, self.eps = num_slots, slot_dim, eps
        # learned per-slot initialisation: a shared Gaussian left all slots identical (see docs)
        self.init_feat = nn.Parameter(torch.randn(num_slots, slot_dim) * 0.5)
        angles = torch.arange(num_slots) * (2 * math.pi / num_slots)
        self.init_pos = nn.Parameter(0.5 * torch.stack([torch.cos(angles), torch.sin(angles)], -1))
        self.rel_scale = rel_scale
        self.norm_in = nn.LayerNorm(in_dim)
        self.to_k = nn.Linear(in_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(in_dim, slot_dim, bias=False)
        self.rel_k = nn.Linear(5, slot_dim, bias=False)
        self.rel_v = nn.Linear(5, slot_dim, bias=False)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.norm_mlp = nn.LayerNorm(slot_dim)
        self.mlp = nn.Sequential(nn.Linear(slot_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, slot_dim))

    def initial_slots(self, batch_size: int):
        return (self.init_pos.expand(batch_size, -1, -1),
                self.init_feat.expand(batch_size, -1, -1))

    def step(self, keys, values, grid, pos, feat) -> SlotAttentionOutput:
        """One iteration; keys/values (N, HW, D) are the input projections."""
        n, k, d = feat.shape
        phi = relative_features(grid, pos, self.rel_scale)                 # (N, K, HW, 5)
        q = self.to_q(self.norm_slots(feat))                               # (N, K, D)
        q_rel = q @ self.rel_k.weight                                      # (N, K, 5)
        logits = (torch.einsum("nkd,nid->nki", q, keys)
                  + torch.einsum("nkc,nkic->nki", q_rel, phi)) / math.sqrt(d)
        attn = logits.softmax(dim=1)                                       # over slots
        weights = attn + self.eps
        weights = weights / weights.sum(-1, keepdim=True)                  # over pixels
        update = (torch.einsum("nki,nid->nkd", weights, values)
                  + self.rel_v(torch.einsum("nki,nkic->nkc", weights, phi)))
        new_pos = torch.einsum("nki,ic->nkc", weights, grid)
        new_feat = self.gru(update.reshape(-1, d), feat.reshape(-1, d)).reshape(n, k, d)
        new_feat = new_feat + self.mlp(self.norm_mlp(new_feat))
        return SlotAttentionOutput(new_pos, new_feat, attn, update)

    def forward(self, inputs: torch.Tensor, grid: torch.Tensor, pos=None, feat=None,
                iters: int = 3) -> SlotAttentionOutput:
        """inputs (N, HW, C) encoder features; starts from the learned slots if pos/feat are None."""
        x = self.norm_in(inputs)
        keys, values = self.to_k(x), self.to_v(x)
        if pos is None or feat is None:
            pos, feat = self.initial_slots(inputs.shape[0])
        out = None
        for _ in range(iters):
            out = self.step(keys, values, grid, pos, feat)
            pos, feat = out.pos, out.feat
        return out
