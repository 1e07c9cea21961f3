"""Size-preserving CNN encoder (Table 2) and the coordinate conventions shared by all networks.

Positions live in normalised image coordinates: pixel column ``c`` of an image of size ``S`` is at
``x = -1 + 2 c / (S - 1)`` (rows likewise for ``y``), so ``(x, y) = (-1, -1)`` is the top-left
pixel centre.  The encoder carries no absolute position: positions enter slot attention and the
decoder relative to each slot's own position (slot-centric reference frames).
"""
import torch
from torch import nn


def coordinate_grid(height: int, width: int, device=None) -> torch.Tensor:
    """(H*W, 2) pixel-centre coordinates (x, y) in [-1, 1], row-major over (row, column)."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(height * width, 2)


def pixels_to_coords(pixels: torch.Tensor, image_size: int) -> torch.Tensor:
    return pixels * (2.0 / (image_size - 1)) - 1.0


def coords_to_pixels(coords: torch.Tensor, image_size: int) -> torch.Tensor:
    return (coords + 1.0) * ((image_size - 1) / 2.0)


class Encoder(nn.Module):
    """Conv stack ('same' padding, ReLU) then LayerNorm and a 2-layer MLP per pixel (Table 2).

    Maps images (B, 3, H, W) to per-pixel features (B, H*W, C).
    """

    def __init__(self, channels: int = 32, kernel: int = 3, layers: int = 2):
        super().__init__()
        convs, c_in = [], 3
        for _ in range(layers):
            convs += [nn.Conv2d(c_in, channels, kernel, padding=kernel // 2), nn.ReLU()]
            c_in = channels
        self.convs = nn.Sequential(*convs)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(),
                                 nn.Linear(channels, channels))
        self.out_dim = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.convs(images)                       # (B, C, H, W)
        feats = feats.flatten(2).transpose(1, 2)         # (B, HW, C)
        return self.mlp(self.norm(feats))
