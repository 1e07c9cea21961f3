"""Spatial broadcast decoder (Table 3) in each slot's own reference frame.

Every slot's features are broadcast over the image together with an embedding of the pixel
coordinates relative to the slot's position, so moving a slot's position moves what it renders.
``kernel=1`` makes the decoder a per-pixel MLP (the fast CPU variant); ``kernel=5`` is the paper's
stack of 5x5 convolutions.  Outputs RGB means in [0, 1] and one mask logit per slot and pixel; the
masks are a softmax over slots taken by the likelihood (spatial Gaussian mixture).

Object slots' masks are local: their mask logits get a Gaussian spatial term
``-|x - pos|^2 / (2 e^2)`` with an extent ``e`` decoded from the slot's features (initially
``extent`` in normalised units).  The background slot (slot 0, see the seeded slot-attention
initialisation) has none.  Without it nothing decides which slot explains a black pixel: an
object slot that also paints black can take mask mass anywhere in the background, and its mask
centroid -- the location by which the paper's evaluation matches slots to objects -- leaves the
object (measured: 11% of the balls on a trained cpu model, while the slots' positions were right).
"""
import math
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .slot_attention import relative_features


class BroadcastDecoder(nn.Module):
    def __init__(self, slot_dim: int, image_size: int, channels: int = 32, kernel: int = 1,
                 layers: int = 2, rel_scale: float = 0.25, extent: float = 0.0):
        super().__init__()
        self.image_size, self.kernel, self.rel_scale = image_size, kernel, rel_scale
        self.extent = None
        if extent > 0:     # the object slots' mask extent e(feat), a softplus of a linear map
            self.extent = nn.Linear(slot_dim, 1)
            with torch.no_grad():
                self.extent.weight.mul_(0.01)
                self.extent.bias.fill_(math.log(math.expm1(extent)))
        self.feat_in = nn.Linear(slot_dim, channels)
        self.pos_in = nn.Linear(5, channels)
        hidden = []
        for _ in range(layers):
            if kernel == 1:
                hidden += [nn.Linear(channels, channels), nn.ReLU()]
            else:
                hidden += [nn.Conv2d(channels, channels, kernel, padding=kernel // 2), nn.ReLU()]
        self.hidden = nn.Sequential(*hidden)
        self.out = (nn.Linear(channels, 4) if kernel == 1
                    else nn.Conv2d(channels, 4, kernel, padding=kernel // 2))

    def forward(self, pos: torch.Tensor, feat: torch.Tensor, grid: torch.Tensor,
                local: Optional[torch.Tensor] = None):
        """pos (B, 2), feat (B, D), grid (HW, 2) -> rgb (B, 3, H, W), mask_logits (B, H, W).

        ``local`` (B,) bool: the rows that get the spatial extent term (default: all, when the
        decoder has an extent)."""
        b, s = pos.shape[0], self.image_size
        rel = relative_features(grid, pos[:, None], self.rel_scale)[:, 0]   # (B, HW, 5)
        x = torch.relu(self.feat_in(feat)[:, None] + self.pos_in(rel))      # (B, HW, C)
        if self.kernel == 1:
            out = self.out(self.hidden(x))                                  # (B, HW, 4)
            out = out.transpose(1, 2).reshape(b, 4, s, s)
        else:
            x = x.transpose(1, 2).reshape(b, -1, s, s)
            out = self.out(self.hidden(x))
        logits = out[:, 3]
        if self.extent is not None:
            e = F.softplus(self.extent(feat)) + 1e-3                        # (B, 1)
            d2 = (grid[None] - pos[:, None]).pow(2).sum(-1)                 # (B, HW)
            spatial = (d2 / (2 * e * e)).reshape(b, s, s)
            if local is not None:
                spatial = spatial * local.to(spatial.dtype)[:, None, None]
            logits = logits - spatial
        return torch.sigmoid(out[:, :3]), logits
