"""Tracking policies: how the guide's perception follows the slots from frame to frame.

The paper's guide observes frame t with slot attention started from the slots h_{t-1}
(Eq. 4): :class:`PaperTracking`.  Slots that follow their objects by slot attention alone lose
an object that is hidden, or that was hidden on the context frame (two slots then share
another object for the rest of the video).  :class:`OcclusionTracking` (the default) adds two
rules, each measured on occlusion videos (``benchmarks/occlusion.py``; BENCHMARKS.md,
"Tracking through occlusion"):

* ``hold_hidden``: a slot that wins almost no pixel keeps its position and colour
  (:meth:`~pyro_vim.nn.SlotAttention.step`), so it waits for its hidden object instead of
  drifting onto another;
* ``reseed``: before the step, a slot that duplicates another (within a pixel, same colour) --
  and with ``reseed_median`` one that holds the frame's median colour, a second background --
  starts on the pixels no slot explains, if there are any (:meth:`SlotAttention.reseed`), so an
  object that appears is picked up.

A policy is chosen by name (``VIMConfig.tracking``), registered in :mod:`pyro_vim.registry`,
and has ``hold`` (whether slot attention holds hidden slots, in discovery too) and
``observe(slot_attention, features, pixels, grid, pos, feat, colour, iters, pixel)``.  It holds
no parameters.
"""
from __future__ import annotations

import torch

from .nn.slot_attention import SlotAttention, SlotAttentionOutput
from .registry import TRACKING, register_tracking

__all__ = ["PaperTracking", "OcclusionTracking", "TRACKING"]


@register_tracking("paper")
class PaperTracking:
    """One slot-attention step (``iters`` of them) from h_{t-1} onto frame t (Eq. 4)."""
    hold = False

    @classmethod
    def from_config(cls, config) -> "PaperTracking":
        return cls()

    def start(self, slot_attention: SlotAttention, pixels, grid, pos, colour, pixel: float):
        """Where the step starts: the slots' own positions and colours."""
        return pos, colour

    def observe(self, slot_attention: SlotAttention, features: torch.Tensor,
                pixels: torch.Tensor, grid: torch.Tensor, pos: torch.Tensor, feat: torch.Tensor,
                colour: torch.Tensor, iters: int, pixel: float) -> SlotAttentionOutput:
        """x̂_t: slot attention from the slots (pos, feat, colour) onto an encoded frame
        ``features`` (N, HW, C) with colours ``pixels`` (N, HW, 3); ``pixel``: one pixel in
        normalised units."""
        pos, colour = self.start(slot_attention, pixels, grid, pos, colour, pixel)
        return slot_attention(features, pixels, grid, pos=pos, feat=feat, colour=colour,
                              iters=iters, hold=self.hold)


@register_tracking("occlusion")
class OcclusionTracking(PaperTracking):
    """Eq. 4 with hidden slots held and duplicated slots re-seeded (module docstring)."""

    def __init__(self, hold_hidden: bool = True, reseed: bool = True,
                 reseed_median: bool = True):
        self.hold, self.reseed, self.reseed_median = hold_hidden, reseed, reseed_median

    @classmethod
    def from_config(cls, config) -> "OcclusionTracking":
        return cls(config.hold_hidden, config.reseed, config.reseed_median)

    def start(self, slot_attention, pixels, grid, pos, colour, pixel):
        if not self.reseed:
            return pos, colour
        pos, colour, _ = slot_attention.reseed(pixels, grid, pos, colour, pixel,
                                               median=self.reseed_median)
        return pos, colour
