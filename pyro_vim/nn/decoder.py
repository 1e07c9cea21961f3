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

``window=w`` (pixels) decodes each row only on the w x w pixels nearest its position (the square
whose centre is the pixel the position rounds to) and gives it no mask mass outside: the decoder's
work for a local slot falls from H*W to w*w pixels.  This is a different model (an object slot
cannot explain a pixel outside its window), not an approximation of the full decode; with w at
least twice the image size the window of a position inside the frame covers the frame, and the
result equals the full decode.
"""
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from .functional import inverse_softplus

#: mask logit of a pixel outside a slot's window: no mass (exp underflows to 0 against any
#: slot decoded there), finite so that no inf - inf arises in the mixture's normalisation
OUTSIDE_LOGIT = -1.0e4


class BroadcastDecoder(nn.Module):
    def __init__(self, slot_dim: int, image_size: int, channels: int = 32, kernel: int = 1,
                 layers: int = 2, rel_scale: float = 0.25, extent: float = 0.0,
                 window: int = 0):
        super().__init__()
        self.image_size, self.kernel, self.rel_scale = image_size, kernel, rel_scale
        self.window = int(window)   # object slots' decode window in pixels (0: the frame)
        self.extent = None
        if extent > 0:     # the object slots' mask extent e(feat), a softplus of a linear map
            self.extent = nn.Linear(slot_dim, 1)
            with torch.no_grad():
                self.extent.weight.mul_(0.01)
                self.extent.bias.fill_(inverse_softplus(extent))
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
                local: Optional[torch.Tensor] = None, window: int = 0):
        """pos (B, 2), feat (B, D), grid (HW, 2) -> rgb (B, 3, H, W), mask_logits (B, H, W).

        ``local`` (B,) bool: the rows that get the spatial extent term (default: all, when the
        decoder has an extent).  ``window`` > 0: every row is decoded in its window only (see
        the module docstring); the caller passes the rows that are local."""
        if window:
            return self._windowed(pos, feat, int(window), local)
        return self._decode(pos, feat, grid[None], self.image_size, local)

    def decode_slots(self, pos: torch.Tensor, feat: torch.Tensor, grid: torch.Tensor):
        """Decode slots (..., K, 2), (..., K, D) whose slot 0 is the background (decoded over the
        frame, no extent term) and slots 1..K-1 objects (local masks; in their window when the
        decoder has one): rgb (..., K, 3, H, W), logits (..., K, H, W)."""
        lead, s, d = pos.shape[:-1], self.image_size, feat.shape[-1]
        if self.window:
            bg = self(pos[..., :1, :].reshape(-1, 2), feat[..., :1, :].reshape(-1, d), grid,
                      local=torch.zeros(pos[..., 0, 0].numel(), dtype=torch.bool,
                                        device=pos.device))
            obj = self(pos[..., 1:, :].reshape(-1, 2), feat[..., 1:, :].reshape(-1, d), grid,
                       window=self.window)
            k = lead[-1]
            rgb = torch.cat([bg[0].reshape(*lead[:-1], 1, 3, s, s),
                             obj[0].reshape(*lead[:-1], k - 1, 3, s, s)], -4)
            logits = torch.cat([bg[1].reshape(*lead[:-1], 1, s, s),
                                obj[1].reshape(*lead[:-1], k - 1, s, s)], -3)
            return rgb, logits
        local = torch.ones(lead, dtype=torch.bool, device=pos.device)
        local[..., 0] = False                  # slot 0 is the background slot: not local
        rgb, logits = self(pos.reshape(-1, 2), feat.reshape(-1, d), grid,
                           local=local.reshape(-1))
        return rgb.reshape(*lead, 3, s, s), logits.reshape(*lead, s, s)

    def _decode(self, pos, feat, grid, size: int, local):
        """Rows decoded on their pixel coordinates ``grid`` (1 or B, size*size, 2)."""
        b = pos.shape[0]
        u = (grid - pos[:, None]) / self.rel_scale                          # (B, P, 2)
        ux, uy = u[..., 0], u[..., 1]
        rel = torch.stack([ux, uy, ux * ux, uy * uy, ux * uy], -1)          # (B, P, 5)
        x = torch.relu(self.feat_in(feat)[:, None] + self.pos_in(rel))      # (B, P, C)
        if self.kernel == 1:
            out = self.out(self.hidden(x))                                  # (B, P, 4)
            out = out.transpose(1, 2).reshape(b, 4, size, size)
        else:
            x = x.transpose(1, 2).reshape(b, -1, size, size)
            out = self.out(self.hidden(x))
        logits = out[:, 3]
        if self.extent is not None:
            e = F.softplus(self.extent(feat)) + 1e-3                        # (B, 1)
            d2 = (grid - pos[:, None]).pow(2).sum(-1)                       # (B, P)
            spatial = (d2 / (2 * e * e)).reshape(b, size, size)
            if local is not None:
                spatial = spatial * local.to(spatial.dtype)[:, None, None]
            logits = logits - spatial
        return torch.sigmoid(out[:, :3]), logits

    def _windowed(self, pos, feat, w: int, local):
        b, s = pos.shape[0], self.image_size
        step = 2.0 / (s - 1)                                # one pixel in grid units
        centre = torch.round((pos.detach() + 1.0) / step)   # (B, 2) pixel (column, row)
        start = (centre - w // 2).clamp(-w, s).long()       # the window's first column and row
        offs = torch.arange(w, device=pos.device)
        cols, rows = start[:, :1] + offs, start[:, 1:] + offs                # (B, w) each
        gx = (cols.to(pos.dtype) * step - 1.0)[:, None, :].expand(b, w, w)
        gy = (rows.to(pos.dtype) * step - 1.0)[:, :, None].expand(b, w, w)
        grid = torch.stack([gx, gy], -1).reshape(b, w * w, 2)                # row-major
        rgb, logits = self._decode(pos, feat, grid, w, local)
        # into a canvas padded by w on every side (a window may hang over the border), cropped
        side = s + 2 * w
        flat = ((rows + w)[:, :, None] * side + (cols + w)[:, None, :]).reshape(b, 1, w * w)
        values = torch.cat([rgb, logits[:, None]], 1).reshape(b, 4, w * w)
        canvas = values.new_zeros(b, 4, side * side)
        canvas[:, 3] = OUTSIDE_LOGIT
        canvas = canvas.scatter(2, flat.expand(b, 4, w * w), values)
        canvas = canvas.view(b, 4, side, side)[:, :, w:w + s, w:w + s]
        return canvas[:, :3], canvas[:, 3]
