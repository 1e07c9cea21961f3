"""Spatial broadcast decoder (Table 3) in each slot's own reference frame.

Every slot's features are broadcast over the image together with an embedding of the pixel
coordinates relative to the slot's position, so moving a slot's position moves what it renders.
``kernel=1`` makes the decoder a per-pixel MLP (the fast CPU variant); ``kernel=5`` is the paper's
stack of 5x5 convolutions.  Outputs RGB means in [0, 1] and one mask logit per slot and pixel; the
masks are a softmax over slots taken by the likelihood (spatial Gaussian mixture).
"""
import torch
from torch import nn

from .slot_attention import relative_features


class BroadcastDecoder(nn.Module):
    def __init__(self, slot_dim: int, image_size: int, channels: int = 32, kernel: int = 1,
                 layers: int = 2, rel_scale: float = 0.25):
        super().__init__()
        self.image_size, self.kernel, self.rel_scale = image_size, kernel, rel_scale
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

    def forward(self, pos: torch.Tensor, feat: torch.Tensor, grid: torch.Tensor):
        """pos (B, 2), feat (B, D), grid (HW, 2) -> rgb (B, 3, H, W), mask_logits (B, H, W)."""
        b, s = pos.shape[0], self.image_size
        rel = relative_features(grid, pos[:, None], self.rel_scale)[:, 0]   # (B, HW, 5)
        x = torch.relu(self.feat_in(feat)[:, None] + self.pos_in(rel))      # (B, HW, C)
        if self.kernel == 1:
            out = self.out(self.hidden(x))                                  # (B, HW, 4)
            out = out.transpose(1, 2).reshape(b, 4, s, s)
        else:
            x = x.transpose(1, 2).reshape(b, -1, s, s)
            out = self.out(self.hidden(x))
        return torch.sigmoid(out[:, :3]), out[:, 3]
