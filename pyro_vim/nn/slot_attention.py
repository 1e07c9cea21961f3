"""Slot attention (Locatello et al., 2020) with an explicit position and colour per slot.

Each slot is a pair (pos, feat): ``pos`` (.., 2) in normalised image coordinates and ``feat``
(.., D).  The attention logits of slot k for pixel i add three terms:

* the usual key-query match q_k . (W_k e_i + A_k phi(u_ki)) / sqrt(D), where the keys include a
  projection of the pixel position *relative to the slot* (slot-centric reference frames, in the
  spirit of invariant slot attention, Biza et al. 2023) through the small fixed features
  phi(u) = (u_x, u_y, u_x^2, u_y^2, u_x u_y) of u = (pixel - pos) / scale;
* a locality term -gamma |u_ki|^2 (gamma > 0 learned);
* an appearance term -|c_i - a_k|^2 / (2 sigma^2) between the pixel's colour c_i and the slot's
  current mean colour a_k (sigma learned).

With the last two, the iterations start out as soft k-means of the pixels in colour and position
(a slot settles on a region of uniform colour near it) and the learned key-query term refines
that; this is what lets slots separate objects within a few hundred steps on two CPU cores.
Each iteration moves ``pos`` to the centroid of a sharpened attention and ``a_k`` to the slot's
mean colour.  The same step serves discovery (several iterations on the context frame,
p(z_0 | c)) and tracking (one step from the slots h_{t-1} onto frame t, Eq. 4).

Discovery starts from one of two initialisations (``init``):

* ``"learned"``: a learned position, colour and feature vector per slot;
* ``"seeded"`` (default): slot 0 keeps a learned initialisation (it settles on the background)
  and slots 1..K-1 are seeded on the frame, one after another, at the pixel farthest (in colour
  and, more weakly, in position) from every seed so far -- the farthest-point seeding of k-means++
  without the randomness.  Soft k-means from fixed starting points has local optima in which one
  slot covers two touching objects and another slot covers nothing; measured on a trained cpu
  model, 10-30% of the balls on the first frame had no slot of their own, and those balls made
  almost all of the module-selection errors.  The seeding puts one slot on each distinct
  colour region before the iterations start.  Feature vectors stay learned per slot.
"""
import math
from typing import NamedTuple, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .functional import inverse_softplus as _inv_softplus

SLOT_INITS = ("learned", "seeded")
#: Where the seeded background slot's starting colour comes from: ``"learned"`` (a parameter) or
#: ``"median"`` (each frame's per-channel median colour: the background, when it covers most
#: pixels, whatever its colour).
BACKGROUND_COLOURS = ("learned", "median")
#: Re-seeding threshold, in units of the appearance term |c - a|^2 / (2 sigma^2) (sigma learned):
#: a pixel this far from a slot's colour is not that slot's, and two slots this close in colour
#: (and within a pixel) are one.  At 2, a pixel must lie two bandwidths from every slot's colour.
RESEED_APPEARANCE = 2.0


def relative_features(grid: torch.Tensor, pos: torch.Tensor, scale: float) -> torch.Tensor:
    """phi((grid - pos) / scale): grid (HW, 2), pos (N, K, 2) -> (N, K, HW, 5)."""
    u = (grid[None, None] - pos[:, :, None]) / scale
    ux, uy = u[..., 0], u[..., 1]
    return torch.stack([ux, uy, ux * ux, uy * uy, ux * uy], -1)


class SlotAttentionOutput(NamedTuple):
    pos: torch.Tensor      # (N, K, 2)
    feat: torch.Tensor     # (N, K, D)
    attn: torch.Tensor     # (N, K, HW) softmax over slots
    update: torch.Tensor   # (N, K, D) attention-weighted values: the slot's grouping x^k of Eq. 4
    colour: torch.Tensor   # (N, K, 3) attention-weighted mean colour


class SlotAttention(nn.Module):
    def __init__(self, num_slots: int, in_dim: int, slot_dim: int, hidden_dim: int = 64,
                 rel_scale: float = 0.5, pos_sharpness: float = 5.0, locality: float = 0.5,
                 colour_sigma: float = 0.15, init: str = "seeded", seed_length: float = 1.0,
                 eps: float = 1e-8, background: str = "learned"):
        super().__init__()
        if init not in SLOT_INITS:
            raise ValueError(f"slot initialisation must be one of {SLOT_INITS}, got {init!r}")
        if background not in BACKGROUND_COLOURS:
            raise ValueError(f"background colour must be one of {BACKGROUND_COLOURS}, "
                             f"got {background!r}")
        self.background = background    # the seeded background slot's start (discovery)
        self.num_slots, self.slot_dim, self.eps = num_slots, slot_dim, eps
        self.rel_scale, self.pos_sharpness = rel_scale, pos_sharpness
        self.init, self.seed_length = init, seed_length
        # learned per-slot initialisation: a shared Gaussian left all slots identical (see docs)
        self.init_feat = nn.Parameter(torch.randn(num_slots, slot_dim) * 0.5)
        learned = num_slots if init == "learned" else 1   # seeded: only the background slot
        angles = torch.arange(learned) * (2 * math.pi / num_slots)
        self.init_pos = nn.Parameter(0.5 * torch.stack([torch.cos(angles), torch.sin(angles)], -1))
        init_colour = torch.full((learned, 3), 0.5)
        init_colour[0] = 0.0            # one slot starts on the dark end, the others mid-grey
        self.init_colour = nn.Parameter(init_colour)
        self.locality = nn.Parameter(torch.tensor(_inv_softplus(locality)))
        self.log_colour_sigma = nn.Parameter(torch.tensor(math.log(colour_sigma)))
        self.norm_in = nn.LayerNorm(in_dim)
        self.to_k = nn.Linear(in_dim, slot_dim, bias=False)
        self.to_v = nn.Linear(in_dim, slot_dim, bias=False)
        self.rel_k = nn.Linear(5, slot_dim, bias=False)
        self.rel_v = nn.Linear(5, slot_dim, bias=False)
        with torch.no_grad():  # start without a learned positional preference
            self.rel_k.weight.mul_(0.01)
            self.rel_v.weight.mul_(0.1)
        self.norm_slots = nn.LayerNorm(slot_dim)
        self.to_q = nn.Linear(slot_dim, slot_dim, bias=False)
        self.gru = nn.GRUCell(slot_dim, slot_dim)
        self.norm_mlp = nn.LayerNorm(slot_dim)
        self.mlp = nn.Sequential(nn.Linear(slot_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, slot_dim))

    def initial_slots(self, pixels: torch.Tensor, grid: torch.Tensor,
                      background: str = "learned"):
        """Start (pos, feat, colour) of discovery on a frame with colours ``pixels`` (N, HW, 3);
        ``background``: see :data:`BACKGROUND_COLOURS` (seeded initialisation only)."""
        n = pixels.shape[0]
        feat = self.init_feat.expand(n, -1, -1)
        if self.init == "learned":
            return (self.init_pos.expand(n, -1, -1), feat, self.init_colour.expand(n, -1, -1))
        pos, colour = self.seeds(pixels, grid, background)
        return pos, feat, colour

    def background_colour(self, pixels: torch.Tensor, background: str = "learned"):
        """(N, 3) starting colour of the seeded background slot."""
        if background not in BACKGROUND_COLOURS:
            raise ValueError(f"background colour must be one of {BACKGROUND_COLOURS}, "
                             f"got {background!r}")
        if background == "median":
            return pixels.median(dim=1).values
        return self.init_colour[0].expand(pixels.shape[0], 3)

    @torch.no_grad()
    def _seed_indices(self, pixels: torch.Tensor, grid: torch.Tensor,
                      background: str = "learned") -> torch.Tensor:
        """Farthest-point seeding: (N, K-1) pixel indices of the seeds of slots 1..K-1."""
        # distance of every pixel to the nearest seed so far; the background slot's seed has a
        # colour but no position
        bg = self.background_colour(pixels, background)
        score = (pixels - bg.unsqueeze(1)).pow(2).sum(-1)                      # (N, HW)
        rows = torch.arange(pixels.shape[0], device=pixels.device)
        chosen = []
        for _ in range(1, self.num_slots):
            idx = score.argmax(-1)                                             # (N,)
            chosen.append(idx)
            colour_d = (pixels - pixels[rows, idx].unsqueeze(1)).pow(2).sum(-1)
            pos_d = (grid.unsqueeze(0) - grid[idx].unsqueeze(1)).pow(2).sum(-1)
            score = torch.minimum(score, colour_d + pos_d / self.seed_length ** 2)
        if not chosen:                                                         # K = 1
            return torch.zeros(pixels.shape[0], 0, dtype=torch.long, device=pixels.device)
        return torch.stack(chosen, -1)

    def seeds(self, pixels: torch.Tensor, grid: torch.Tensor, background: str = "learned"):
        """(N, K, 2) positions and (N, K, 3) colours: the background slot, then seeds."""
        n = pixels.shape[0]
        idx = self._seed_indices(pixels, grid, background)                     # (N, K-1)
        pos = torch.cat([self.init_pos[:1].expand(n, 1, 2), grid[idx]], 1)
        colour = torch.gather(pixels, 1, idx.unsqueeze(-1).expand(-1, -1, 3))
        bg = self.background_colour(pixels, background).unsqueeze(1)
        return pos, torch.cat([bg, colour], 1)

    def appearance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The appearance term |a_i - b_j|^2 / (2 sigma^2): (N, I, 3), (N, J, 3) -> (N, I, J)."""
        return torch.cdist(a, b).pow(2) / (2 * torch.exp(2 * self.log_colour_sigma))

    @torch.no_grad()
    def redundant(self, pos: torch.Tensor, colour: torch.Tensor, radius: float,
                  background: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, K) bool: object slots that duplicate another slot.

        Slot k duplicates slot j < k when both are object slots within ``radius`` of each other
        and their colours lie within :data:`RESEED_APPEARANCE` of each other in units of the
        appearance term; an object slot whose colour is the background slot's (slot 0 of the
        seeded initialisation) duplicates the background, and so does one whose colour is
        ``background`` (N, 3), when given (the frame's median colour: the background slot's
        learned starting colour may differ from the frame's).  Such a slot explains nothing its
        partner does not."""
        k = pos.shape[1]
        same_colour = self.appearance(colour, colour) < RESEED_APPEARANCE
        near = torch.cdist(pos, pos) < radius
        first = 1 if self.init == "seeded" else 0             # slot 0: the background
        earlier = torch.ones(k, k, dtype=torch.bool, device=pos.device).tril(-1)  # j < k
        earlier[:, :first] = False
        dup = (same_colour & near & earlier.T.unsqueeze(0)).any(1)           # (N, K): over j
        if first:
            dup = dup | same_colour[:, 0]
            if background is not None:
                dup = dup | (self.appearance(colour, background.unsqueeze(1))[..., 0]
                             < RESEED_APPEARANCE)
        dup[:, :first] = False
        return dup

    def reseed(self, pixels: torch.Tensor, grid: torch.Tensor, pos: torch.Tensor,
               colour: torch.Tensor, radius: float, median: bool = False):
        """Restart duplicated object slots on pixels that no slot's colour explains.

        Tracking follows each slot's colour from frame to frame, so an object that was hidden
        when the slots were discovered (behind another on the context frame) or whose slot was
        pulled onto another object while hidden would stay unexplained for the rest of the
        video, with two slots sharing the other object.  Before a tracking step, every
        :meth:`redundant` slot is moved, one after another, to the pixel worst explained by the
        remaining slots' colours (as in the farthest-point seeding), provided that pixel is
        farther than :data:`RESEED_APPEARANCE` (in units of the appearance term, so relative
        to the learned colour bandwidth) from every slot's colour.  Otherwise it stays.
        With ``median``, an object slot holding the frame's median colour (the background's,
        where objects cover less than half of the frame) is redundant too, and the median
        colour counts as explaining the pixels it matches, so such a slot moves only when an
        object's pixels are unexplained (e.g. one hidden on the context frame has appeared).

        The choice is made without gradient; a moved slot starts from a constant (the pixel's
        position and colour), every other slot from its own ``pos`` and ``colour`` tensors, so
        their gradients are untouched.  Returns the start (pos, colour) of the tracking step and
        the (N, K) mask of moved slots."""
        with torch.no_grad():
            bg = pixels.median(dim=1).values if median else None             # (N, 3)
            dup = self.redundant(pos, colour, radius, background=bg)
            moved = torch.zeros_like(dup)
            if not bool(dup.any()):
                return pos, colour, moved
            cost = self.appearance(colour, pixels)                             # (N, K, HW)
            cost = cost.masked_fill(dup.unsqueeze(-1), float("inf")).min(1).values  # (N, HW)
            if bg is not None:
                cost = torch.minimum(cost, self.appearance(bg.unsqueeze(1), pixels)[:, 0])
            rows = torch.arange(pixels.shape[0], device=pixels.device)
            target_pos, target_colour = pos.detach().clone(), colour.detach().clone()
            for k in range(pos.shape[1]):
                if not bool(dup[:, k].any()):
                    continue
                worst, idx = cost.max(-1)                                      # (N,)
                move = dup[:, k] & (worst > RESEED_APPEARANCE)
                if not bool(move.any()):
                    continue
                new_colour = pixels[rows, idx]                                 # (N, 3)
                target_pos[:, k] = grid[idx].to(target_pos.dtype)
                target_colour[:, k] = new_colour.to(target_colour.dtype)
                seeded = self.appearance(new_colour.unsqueeze(1), pixels)[:, 0]
                cost = torch.where(move[:, None], torch.minimum(cost, seeded), cost)
                moved[:, k] = move
        if not bool(moved.any()):
            return pos, colour, moved
        keep = ~moved.unsqueeze(-1)
        return (torch.where(keep, pos, target_pos), torch.where(keep, colour, target_colour),
                moved)

    def step(self, keys, values, pixels, grid, pos, feat, colour,
             hold: bool = False) -> SlotAttentionOutput:
        """One iteration; keys/values (N, HW, D) input projections, pixels (N, HW, 3).

        ``hold``: a slot that wins m < 1 pixel (its sharpened attention mass) moves its position
        and colour only m of the way to its new centroid and mean colour, so that a slot whose
        object is hidden keeps them instead of taking those of whatever pixels it wins least
        badly; a slot that wins a pixel or more moves all the way."""
        n, k, d = feat.shape
        phi = relative_features(grid, pos, self.rel_scale)                 # (N, K, HW, 5)
        q = self.to_q(self.norm_slots(feat))                               # (N, K, D)
        q_rel = q @ self.rel_k.weight                                      # (N, K, 5)
        locality = F.softplus(self.locality) * (phi[..., 2] + phi[..., 3])
        appearance = self.appearance(colour, pixels)                      # (N, K, HW)
        logits = (torch.einsum("nkd,nid->nki", q, keys)
                  + torch.einsum("nkc,nkic->nki", q_rel, phi)) / math.sqrt(d)
        logits = logits - locality - appearance
        attn = logits.softmax(dim=1)                                       # over slots
        weights = attn + self.eps
        weights = weights / weights.sum(-1, keepdim=True)                  # over pixels
        update = (torch.einsum("nki,nid->nkd", weights, values)
                  + self.rel_v(torch.einsum("nki,nkic->nkc", weights, phi)))
        # position and colour: from a sharpened attention, so that soft leakage from the
        # background does not drag every slot towards the image centre
        sharp = (logits * self.pos_sharpness).softmax(dim=1) + self.eps
        mass = sharp.sum(-1, keepdim=True)                                 # (N, K, 1) pixels
        sharp = sharp / mass
        new_pos = torch.einsum("nki,ic->nkc", sharp, grid)
        new_colour = torch.einsum("nki,nic->nkc", sharp, pixels)
        if hold:
            gate = mass.clamp(max=1.0)
            new_pos = pos + gate * (new_pos - pos)
            new_colour = colour + gate * (new_colour - colour)
        new_feat = self.gru(update.reshape(-1, d), feat.reshape(-1, d)).reshape(n, k, d)
        new_feat = new_feat + self.mlp(self.norm_mlp(new_feat))
        return SlotAttentionOutput(new_pos, new_feat, attn, update, new_colour)

    def forward(self, inputs: torch.Tensor, pixels: torch.Tensor, grid: torch.Tensor,
                pos: Optional[torch.Tensor] = None, feat: Optional[torch.Tensor] = None,
                colour: Optional[torch.Tensor] = None, iters: int = 3,
                hold: bool = False, background: Optional[str] = None) -> SlotAttentionOutput:
        """inputs (N, HW, C) encoder features, pixels (N, HW, 3) the frame's colours.

        Starts from the initial slots when ``pos``/``feat``/``colour`` are None (``background``:
        the seeded background slot's starting colour, :data:`BACKGROUND_COLOURS`, by default the
        one given at construction); ``hold``: see :meth:`step`.
        """
        background = self.background if background is None else background
        x = self.norm_in(inputs)
        keys, values = self.to_k(x), self.to_v(x)
        if pos is None or feat is None:
            pos, feat, init_colour = self.initial_slots(pixels, grid, background)
            colour = init_colour if colour is None else colour
        out = None
        for _ in range(iters):
            out = self.step(keys, values, pixels, grid, pos, feat, colour, hold)
            pos, feat, colour = out.pos, out.feat, out.colour
        return out
