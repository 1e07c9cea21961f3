"""The M independently parametrised transition modules and the key-query scorer (Sec. 3.1, A.1).

A slot state is h = (pos, feat) (with ``interaction.velocity``: (pos, vel, feat), see
:class:`TransitionModules`; binary modules of pairs of slots are in :mod:`.interaction`).
Module m maps h to an additive update f_m(h) = (dpos_m, dfeat_m) (Table 4 sizes), so candidate m
is s_m = (pos + dpos_m, feat + dfeat_m).  The M MLPs are stored as stacked weights and evaluated
in one batched call.  Modules start near the identity: the last layer's weights are small and
each module's position bias is a translation of ``init_scale`` (normalised units) in an
independent uniformly random direction, so that the modules start distinct but uninformed (no
grouping of the moves is built in).
"""
import math

import torch
from torch import nn


class MLP(nn.Sequential):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 2):
        mods, d = [], in_dim
        for _ in range(layers - 1):
            mods += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        mods.append(nn.Linear(d, out_dim))
        super().__init__(*mods)


class StackedLinear(nn.Module):
    """M independent linear maps applied to (..., M, in) -> (..., M, out)."""

    def __init__(self, num: int, in_dim: int, out_dim: int, weight_scale: float = 1.0):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(num, in_dim, out_dim).uniform_(-bound, bound)
                                   * weight_scale)
        self.bias = nn.Parameter(torch.empty(num, out_dim).uniform_(-bound, bound) * weight_scale)

    def forward(self, x):
        return torch.einsum("...mi,mio->...mo", x, self.weight) + self.bias


class TransitionModules(nn.Module):
    """M unary modules.  ``velocity=True`` (``interaction.velocity``, beyond the paper): the
    state is h = (pos, vel, feat) and module m outputs (dpos_m, dvel_m, dfeat_m); the candidate
    is then (pos + vel + dpos_m, vel + dvel_m, feat + dfeat_m), a deviation from inertial flight
    (:meth:`pyro_vim.model.VIM.candidate_states`), and the random starting direction is both a
    position and a velocity kick."""

    def __init__(self, num_modules: int, slot_dim: int, hidden: int = 64,
                 init_scale: float = 0.1, velocity: bool = False):
        super().__init__()
        self.num_modules, self.slot_dim = num_modules, slot_dim
        self.velocity = bool(velocity)
        motion = 4 if velocity else 2
        in_dim = motion + slot_dim
        self.norm = nn.LayerNorm(slot_dim)
        self.l1 = StackedLinear(num_modules, in_dim, hidden)
        self.l2 = StackedLinear(num_modules, hidden, hidden)
        self.l3 = StackedLinear(num_modules, hidden, motion + slot_dim, weight_scale=0.01)
        with torch.no_grad():
            angles = torch.rand(num_modules) * (2 * math.pi)   # i.i.d.: no built-in grouping
            directions = torch.stack([torch.cos(angles), torch.sin(angles)], -1)
            self.l3.bias[:, :2] = init_scale * directions
            self.l3.bias[:, 2:] = 0.0
            if velocity:
                self.l3.bias[:, 2:4] = init_scale * directions

    def forward(self, pos: torch.Tensor, feat: torch.Tensor, vel: torch.Tensor = None):
        """pos (..., 2), feat (..., D) -> updates dpos (..., M, 2), dfeat (..., M, D); with
        ``velocity``, ``vel`` (..., 2) is required and dvel (..., M, 2) is returned third."""
        if self.velocity != (vel is not None):
            raise ValueError(f"these modules were built with velocity={self.velocity}: "
                             f"pass vel= {'(..., 2)' if self.velocity else 'None'}")
        parts = [pos, self.norm(feat)] if vel is None else [pos, vel, self.norm(feat)]
        x = torch.cat(parts, -1)
        x = x.unsqueeze(-2).expand(*x.shape[:-1], self.num_modules, x.shape[-1])
        x = self.l3(torch.relu(self.l2(torch.relu(self.l1(x)))))
        if vel is None:
            return x[..., :2], x[..., 2:]
        return x[..., :2], x[..., 4:], x[..., 2:4]


class PositionFeatures(nn.Module):
    """(x, y) in normalised units -> (x, y, sin(pi 2^k x), cos(pi 2^k x), ... k < octaves).

    An MLP on raw coordinates in [-1, 1] learns a sharp function of position (a frame border
    a few pixels wide) only slowly; octave features make it one layer away.  ``octaves = 0``
    is the identity."""

    def __init__(self, octaves: int):
        super().__init__()
        if isinstance(octaves, bool) or not isinstance(octaves, int) or octaves < 0:
            raise ValueError(f"octaves must be an int >= 0, got {octaves!r}")
        self.octaves = octaves
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(octaves, dtype=torch.float),
                             persistent=False)

    @property
    def out_dim(self) -> int:
        return 2 + 4 * self.octaves

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        if self.octaves == 0:
            return pos
        angle = (pos.unsqueeze(-1) * self.freqs.to(pos.dtype)).flatten(-2)
        return torch.cat([pos, angle.sin(), angle.cos()], -1)


class KeyQuery(nn.Module):
    """Key-query attention logits between one query per slot and M keys (A.1: 2-layer MLPs)."""

    def __init__(self, query_dim: int, key_dim: int, hidden: int = 64, out_dim: int = 32):
        super().__init__()
        self.query = MLP(query_dim, hidden, out_dim)
        self.key = MLP(key_dim, hidden, out_dim)
        self.scale = 1.0 / math.sqrt(out_dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (..., Q), keys (..., M, Kd) -> logits (..., M)."""
        q = self.query(query).unsqueeze(-2)
        return (q * self.key(keys)).sum(-1) * self.scale
