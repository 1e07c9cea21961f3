"""The VIM generative model as a Pyro program (Sec. 3, Eq. 2) and its guide's recurrence.

Sites (the paper's symbols), under the plates ``videos`` (dim -2) and ``slots`` (dim -1):

* ``z_0``    Normal, event dim 1: the initial slot states from the discovery model p(z_0 | c),
             slot attention over the context frame c = x_0.
* ``r_{t}``  SafeRelaxedOneHotCategorical over M modules, t = 1..T-1: module choice per slot,
             prior by key-query attention between the slot and the candidates (Sec. 3.1).
* ``z_{t}``  Normal, event dim 1: Gaussian additive update, prior N(MLP(f(h))) (Sec. 3.1),
             scaled by ``poutine.scale(z_kl_weight)`` for annealing (Sec. 3.3's tension).
* ``x``      SpatialGaussianMixture, observed: all frames, decoded in one batched call.

A VIM-k (``config.iterations`` k > 1) has sites ``r_{t}_{i}``, ``z_{t}_{i}`` for its k
iterations between two frames.  With ``config.iteration_prior = "start"`` (the default) the prior
of every iteration's choice is p(r | h_{t-1}), so the k choices are i.i.d. given the state before
the transition, as the compositional data's moves are; ``"current"`` scores each iteration's
candidates from the state the previous one produced.

The slot state is h = (pos, feat): an explicit 2-D position (normalised image coordinates) and
appearance features.  h_t = (pos_{t-1} + sum_m r_m dpos_m + z^pos,
LayerNorm(feat_{t-1} + sum_m r_m dfeat_m + z^feat)), the paper's
h_t = LayerNorm(h_{t-1} + z_t + f(h_{t-1}, r_t)) with the position kept out of the LayerNorm.

Interacting objects (``config.interaction``, off by default, :mod:`pyro_vim.interactions`,
docs/interactions.md): with ``velocity`` the state is h = (pos, vel, feat), ``z_0`` covers it and
p(z_0 | c) reads it off the first two frames; with ``num_binary_modules`` B > 0 a transition
also samples ``p_{t}``, each slot's partner (one of the other slots or "none") for the binary
module its ``r_{t}`` may choose, in the same shared :meth:`VIM.transition_step`.  Off, the
program above is unchanged, site for site and number for number.

Where the paper ends: every mechanism beyond it is a part chosen by name in the config, built
here and called, never a flag read in :meth:`VIM._model` / :meth:`VIM._guide`: the selection
prior (:mod:`pyro_vim.priors`), the guide with its selection scorer (:mod:`pyro_vim.guides`), the
guide's tracking policy (:mod:`pyro_vim.tracking`), how choices mix the candidates
(:mod:`pyro_vim.choices`) and the decoder's window (:mod:`pyro_vim.nn.decoder`); the trainer's
merge step lives in :mod:`pyro_vim.duplicates`.  ``VIMConfig(**PAPER_PARTS)`` sets each part to
the paper's choice.
"""
from __future__ import annotations

import contextlib
from typing import Dict, List, NamedTuple, Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from . import registry, sites
from .choices import ChoiceMixing
from .config import VIMConfig
from .distributions import SafeRelaxedOneHotCategorical, SpatialGaussianMixture
from .handlers import UseMeans
from .interactions import Interactions
from .nn import (
    MLP,
    BroadcastDecoder,
    Encoder,
    SlotAttention,
    TransitionModules,
    coordinate_grid,
    coords_to_pixels,
)
from .nn.functional import inverse_softplus as _inverse_softplus


class SlotState(NamedTuple):
    """h_t for every video and slot (with a candidate axis before the last one: the candidate
    states s_m)."""
    pos: torch.Tensor    # (N, K, 2) normalised (x, y)
    feat: torch.Tensor   # (N, K, D)
    vel: Optional[torch.Tensor] = None   # (N, K, 2) normalised units per frame, only with
    #                                      interaction.velocity

    @property
    def rest(self) -> torch.Tensor:
        """The state after its position, as the selection prior and guide see it: feat, or
        (vel, feat) with a velocity."""
        return self.feat if self.vel is None else torch.cat([self.vel, self.feat], -1)


class Step(NamedTuple):
    """What one transition step sampled: the new state h_t, the selection logits and r_t."""
    h: SlotState
    logits: torch.Tensor             # (N, K, M)
    r: torch.Tensor                  # (N, K, M) relaxed (or, under UseMeans, hard) one-hot
    mix_pos: torch.Tensor            # (N, K, 2) where the chosen modules put the slot (before z)
    mix_feat: torch.Tensor           # (N, K, D) the chosen modules' features (before z)
    partner_logits: Optional[torch.Tensor] = None   # (N, K, K) with binary modules: p_t's
    partner: Optional[torch.Tensor] = None          # (N, K, K) the sampled p_t
    mix_vel: Optional[torch.Tensor] = None          # (N, K, 2) with a velocity (before z)


class StepRecord(NamedTuple):
    """What one transition step (one iteration of it) of the guide computed (for ``infer``)."""
    selection_logits: torch.Tensor   # (N, K, M)
    selection: torch.Tensor          # (N, K, M) the sampled / hard one-hot r_t
    observed_pos: torch.Tensor       # (N, K, 2) slot-attention position on frame t
    module_pos: torch.Tensor         # (N, K, 2) position after the chosen module, before z
    module_feat: torch.Tensor        # (N, K, D) features after the chosen module, before z
    partner_logits: Optional[torch.Tensor] = None   # (N, K, K) with binary modules
    partner: Optional[torch.Tensor] = None          # (N, K, K) the sampled / hard p_t
    module_vel: Optional[torch.Tensor] = None       # (N, K, 2) with a velocity


@registry.register_model("vim")
class VIM(PyroModule):
    """Variational Independent Modules.  ``VIM(config)``; ``.model(frames)``, ``.guide(frames)``."""

    def __init__(self, config: Optional[VIMConfig] = None, prior: Optional[nn.Module] = None,
                 guide: Optional[nn.Module] = None):
        """``config`` names the prior and guide (``config.prior``, ``config.guide``); an instance
        passed as ``prior=`` / ``guide=`` replaces the named one.  If its class is registered
        (:mod:`pyro_vim.registry`) the model's config takes its name, so a checkpoint restores
        it; an unregistered class is recorded in :attr:`custom_parts` and must be passed again
        to :meth:`load`."""
        super().__init__()
        if config is None:
            config = VIMConfig.preset("cpu")
        if not isinstance(config, VIMConfig):
            raise TypeError(f"VIM expects a VIMConfig, got {type(config).__name__}")
        config.validate()
        self.custom_parts: Dict[str, str] = {}
        names = {}
        for kind, part in (("prior", prior), ("guide", guide)):
            if part is None:
                continue
            if not isinstance(part, nn.Module):
                raise TypeError(f"{kind}= must be a torch/Pyro module, got {type(part).__name__}")
            try:
                names[kind] = registry.name_of(kind, part)
            except ValueError:
                self.custom_parts[kind] = f"{type(part).__module__}.{type(part).__qualname__}"
        if names:
            config = config.replace(**names)
        if config.model != "vim":
            raise ValueError(f"VIM was given a config for model {config.model!r}; build it with "
                             "pyro_vim.models.build_model(config)")
        self.config = c = config
        pixel = 2.0 / (c.image_size - 1)
        self.encoder = Encoder(c.encoder_channels, c.encoder_kernel, c.encoder_layers)
        self.slot_attention = SlotAttention(c.num_slots, c.encoder_channels, c.slot_dim,
                                            hidden_dim=c.update_hidden,
                                            colour_sigma=c.colour_sigma, init=c.slot_init,
                                            background=c.background_colour)
        #: how the guide's perception follows the slots (:mod:`pyro_vim.tracking`)
        self.tracking = registry.lookup("tracking", c.tracking).from_config(c)
        self.decoder = BroadcastDecoder(c.slot_dim, c.image_size, c.decoder_channels,
                                        c.decoder_kernel, c.decoder_layers,
                                        extent=c.mask_extent * pixel, window=c.decode_window)
        #: how a module choice r mixes the candidates (:mod:`pyro_vim.choices`)
        self.choices = ChoiceMixing.from_config(c)
        self.transition = TransitionModules(c.num_modules, c.slot_dim, c.module_hidden,
                                            init_scale=c.module_init_scale * pixel,
                                            velocity=c.velocity)
        #: binary modules and the partner site p_t (:mod:`pyro_vim.interactions`); None: the
        #: paper's unary modules only
        self.interactions = (Interactions.from_config(c) if c.num_binary_modules else None)
        #: the position's size in the state, and the velocity's (2 or 4)
        self.motion_dim = c.motion_dim
        self.state_norm = nn.LayerNorm(c.slot_dim)
        self.prior = prior if prior is not None else registry.lookup("prior",
                                                                     c.prior).from_config(c)
        s, k = c.latent_dim, c.motion_dim
        self.update_prior = MLP(s, c.update_hidden, 2 * s)
        with torch.no_grad():
            last = self.update_prior[-1]
            last.weight.mul_(0.01)
            last.bias.zero_()
            last.bias[s:s + k].fill_(_inverse_softplus(0.5 * pixel))
            last.bias[s + k:].fill_(_inverse_softplus(0.1))
        self.posterior = guide if guide is not None else registry.lookup("guide",
                                                                         c.guide).from_config(c)
        self.register_buffer("grid", coordinate_grid(c.image_size, c.image_size))
        self.register_buffer("temperature", torch.tensor(float(c.temperature)))
        self.register_buffer("z0_scale", torch.tensor(float(c.z0_scale)))
        self.register_buffer("z_pos_scale", torch.tensor(float(c.z_pos_scale) * pixel))
        self.z_kl_weight = 1.0
        #: frames encoded / decoded at a time when no gradient is taken (0: all at once)
        self.chunk_frames = 16
        #: (video, frame) pairs decoded in one decoder call when no gradient is taken (0: no
        #: limit): the decoder's activations grow with videos x frames x slots x pixels x
        #: channels, and this bounds them for many videos as well as long ones
        self.decode_batch = 64

    # ------------------------------------------------------------------ validation
    def check_frames(self, frames, min_frames: int = 2) -> torch.Tensor:
        """Validate a (N, T, 3, H, W) float tensor in [0, 1]; raise a clear error otherwise."""
        expected = f"(N, T, 3, {self.config.image_size}, {self.config.image_size})"
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"frames must be a torch.Tensor of shape {expected}, got "
                            f"{type(frames).__name__}")
        if not frames.is_floating_point():
            raise TypeError(f"frames must be floating point in [0, 1] (got dtype {frames.dtype}; "
                            "convert uint8 images with frames.float() / 255)")
        if frames.dim() != 5 or frames.shape[2] != 3:
            raise ValueError(f"frames must have shape {expected}, got {tuple(frames.shape)}")
        size = self.config.image_size
        if frames.shape[-2:] != (size, size):
            raise ValueError(f"frames are {frames.shape[-2]}x{frames.shape[-1]} but the config's "
                             f"image_size is {size}: expected {expected}")
        if frames.shape[0] == 0:
            raise ValueError(f"frames is an empty batch (N=0); expected {expected}")
        if self.config.velocity:
            min_frames = 2
        if frames.shape[1] < min_frames:
            what = ("the two context frames of a velocity (interaction.velocity)"
                    if self.config.velocity else "a context frame and a next frame")
            raise ValueError(f"frames has {frames.shape[1]} frame(s); VIM needs at least "
                             f"{min_frames} ({what})")
        if not torch.isfinite(frames).all():
            raise ValueError("frames contain NaN or inf values")
        if frames.min() < 0 or frames.max() > 1:
            raise ValueError(f"frames must lie in [0, 1], got values in "
                             f"[{frames.min().item():.3g}, {frames.max().item():.3g}]")
        param = next(self.parameters())
        return frames.to(device=param.device, dtype=param.dtype)

    # ------------------------------------------------------------------ deterministic pieces
    def encode(self, frames: torch.Tensor, chunk: Optional[int] = None) -> torch.Tensor:
        """All frames in one batched call (or ``chunk`` frames of each video at a time, which
        bounds the encoder's activations for long videos): (N, T, 3, H, W) -> (N, T, H*W, C)."""
        n, t = frames.shape[:2]
        if chunk is not None and chunk < t:
            return torch.cat([self.encode(frames[:, i:i + chunk]) for i in range(0, t, chunk)],
                             1)
        return self.encoder(frames.reshape(n * t, *frames.shape[2:])).reshape(n, t, -1,
                                                                               self.encoder.out_dim)

    def pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, H, W) -> (..., H*W, 3) pixel colours."""
        return frames.flatten(-2).transpose(-1, -2)

    def discover(self, context_features: torch.Tensor, context: torch.Tensor,
                 second: Optional[tuple] = None):
        """p(z_0 | c): slot attention on the context frame c (N, 3, H, W) and its features.

        With ``interaction.velocity`` the context is the first two frames: ``second`` = (features,
        frame) of frame 1, onto which one tracking step (:meth:`observe`) follows the discovered
        slots; the velocity is the displacement (zero without a second frame: slot-attention
        pre-training on single frames).  Returns loc, scale of z_0 = (pos, [vel,] feat) and the
        slots' mean colours (used by the guide's tracking).
        """
        sa = self.slot_attention(context_features, self.pixels(context), self.grid,
                                 iters=self.config.discovery_iters, hold=self.tracking.hold)
        if not self.config.velocity:
            loc = torch.cat([sa.pos, self.state_norm(sa.feat)], -1)
            return loc, self.z0_scale.expand(loc.shape), sa.colour
        feat = self.state_norm(sa.feat)
        vel = torch.zeros_like(sa.pos)
        if second is not None:
            seen = self.observe(second[0], second[1], SlotState(sa.pos, feat), sa.colour)
            vel = seen.pos - sa.pos
        loc = torch.cat([sa.pos, vel, feat], -1)
        return loc, self.z0_scale.expand(loc.shape), sa.colour

    def state_of(self, z: torch.Tensor) -> SlotState:
        """A state vector (..., 2 + [2 +] D) (``z_0``'s value) -> :class:`SlotState`."""
        if self.motion_dim == 2:
            return SlotState(z[..., :2], z[..., 2:])
        return SlotState(z[..., :2], z[..., 4:], z[..., 2:4])

    def candidates(self, h: SlotState, stay: bool = False):
        """s^k_t = {f_m(h^k_{t-1})}: (N, K, M, 2) positions and (N, K, M, D) features (with
        binary modules every (module, partner) pair's candidate follows, with a velocity the
        features are (vel, feat): :meth:`candidate_states`); with ``stay`` the unchanged state
        is appended as candidate M."""
        cand = self.candidate_states(h, stay)
        return cand.pos, cand.rest

    def candidate_states(self, h: SlotState, stay: bool = False) -> SlotState:
        """The candidates as states with a candidate axis (N, K, C, ·): the M unary modules'
        f_m(h^k) and, with binary modules, the B x K pairs' g_b(h^k, h^j)
        (:meth:`Interactions.pair_updates`); ``stay`` appends h itself."""
        if h.vel is None:
            cand = self.apply_updates(h, *self.transition(h.pos, h.feat))
        else:
            dpos, dfeat, dvel = self.transition(h.pos, h.feat, h.vel)
            cand = self.apply_updates(h, dpos, dfeat, dvel)
        if self.interactions is not None:
            pairs = self.apply_updates(h, *self.interactions.pair_updates(h))
            cand = SlotState(*(None if a is None else torch.cat([a, b], -2)
                               for a, b in zip(cand, pairs)))
        if stay:
            cand = SlotState(*(None if a is None else torch.cat([a, b.unsqueeze(-2)], -2)
                               for a, b in zip(cand, h)))
        return cand

    @staticmethod
    def apply_updates(h: SlotState, dpos, dfeat, dvel=None) -> SlotState:
        """Candidates (N, K, C, ·) from the modules' updates: (pos + dpos, feat + dfeat), or
        with a velocity (pos + vel + dpos, vel + dvel, feat + dfeat): the modules are
        deviations from inertial flight."""
        if h.vel is None:
            return SlotState(h.pos.unsqueeze(-2) + dpos, h.feat.unsqueeze(-2) + dfeat)
        vel = h.vel.unsqueeze(-2)
        return SlotState(h.pos.unsqueeze(-2) + (vel + dpos), h.feat.unsqueeze(-2) + dfeat,
                         vel + dvel)

    @staticmethod
    def mix(r: torch.Tensor, cand_pos: torch.Tensor, cand_feat: torch.Tensor):
        """f(h, r): the candidates weighted by the (relaxed) one-hot choice r (N, K, M)."""
        w = r.unsqueeze(-1)
        return (w * cand_pos).sum(-2), (w * cand_feat).sum(-2)

    @staticmethod
    def mix_states(weights: torch.Tensor, cand: SlotState) -> SlotState:
        """:meth:`mix` of candidate states (every field of ``cand``) by ``weights`` (N, K, C)."""
        w = weights.unsqueeze(-1)
        return SlotState(*(None if x is None else (w * x).sum(-2) for x in cand))

    def latent_update_prior(self, mix_pos, mix_feat):
        """N(MLP(f(h, r))) of Sec. 3.1.  The position part is N(0, z_pos_scale): the update models
        what the modules leave unexplained.  With a learned scale the prior widened until z
        carried the motion and the modules went unused; with a learned mean the prior took over
        half of every move (the modules learned 1.6 px of the 3 px steps)."""
        out = self.update_prior(torch.cat([mix_pos, mix_feat], -1))
        s, k = self.config.latent_dim, self.motion_dim     # a velocity is treated as the position
        loc = torch.cat([torch.zeros_like(out[..., :k]), out[..., k:s]], -1)
        scale = torch.cat([self.z_pos_scale.expand(out[..., s:s + k].shape),
                           F.softplus(out[..., s + k:]) + 1e-4], -1)
        return loc, scale

    def update(self, mix_pos, mix_feat, z) -> SlotState:
        """g(h_{t-1}, z_t, r_t) of Eq. 2 (``mix_feat``: the mix's :attr:`SlotState.rest`)."""
        if self.motion_dim == 2:
            return SlotState(mix_pos + z[..., :2], self.state_norm(mix_feat + z[..., 2:]))
        return SlotState(mix_pos + z[..., :2], self.state_norm(mix_feat[..., 2:] + z[..., 4:]),
                         mix_feat[..., :2] + z[..., 2:4])

    def observe(self, features, frame, h: SlotState, colour, iters: Optional[int] = None):
        """x̂^k_t of Eq. 4: the tracking policy's slot attention from h_{t-1} onto an encoded
        frame (N, HW, C) (:mod:`pyro_vim.tracking`)."""
        return self.tracking.observe(self.slot_attention, features, self.pixels(frame),
                                     self.grid, h.pos, h.feat, colour,
                                     iters or self.config.track_iters,
                                     2.0 / (self.config.image_size - 1))

    def decode(self, pos: torch.Tensor, feat: torch.Tensor):
        """Decode all (..., K) slots in one call: rgb (..., K, 3, H, W), logits (..., K, H, W);
        slot 0 is the background slot, the others are objects (local masks)."""
        return self.decoder.decode_slots(pos, feat, self.grid)

    @torch.no_grad()
    def render(self, slots: torch.Tensor) -> torch.Tensor:
        """Draw slot states (..., K, 2 + D) = (pos, feat) as frames (..., 3, H, W): the mean of
        the spatial mixture of their decoded slots."""
        rgb, logits = self.decode(slots[..., :2], slots[..., 2:])
        return SpatialGaussianMixture(rgb, logits, self.config.sigma_x).mean

    def likelihood(self, states: List[SlotState]) -> SpatialGaussianMixture:
        """The spatial mixture of every frame's decoded slots.  Without gradients (evaluation,
        prediction) the frames are decoded :attr:`chunk_frames` at a time and at most
        :attr:`decode_batch` (video, frame) pairs per call (:meth:`decode_blocks`), which bounds
        the decoder's activations for long videos and for many videos; the result is the same
        up to float rounding."""
        pos = torch.stack([h.pos for h in states], 1)      # (N, T, K, 2)
        feat = torch.stack([h.feat for h in states], 1)
        if torch.is_grad_enabled():
            rgb, logits = self.decode(pos, feat)
        else:
            rgb, logits = self.decode_blocks(pos, feat, self.chunk_frames)
        return SpatialGaussianMixture(rgb, logits, self.config.sigma_x)

    def decode_blocks(self, pos: torch.Tensor, feat: torch.Tensor, frames: int = 0):
        """:meth:`decode` of (N, T, K) slot states in blocks of at most ``frames`` frames of each
        video (0: all) and at most :attr:`decode_batch` (video, frame) pairs in all, so that the
        decoder's activations stay bounded however many videos and frames there are.  Returns
        rgb (N, T, K, 3, H, W) and logits (N, T, K, H, W), the same as one call up to float
        rounding (every pair is decoded on its own)."""
        n, t = pos.shape[:2]
        frames = min(frames or t, self.decode_batch or t, t)
        videos = max(1, self.decode_batch // frames) if self.decode_batch else n
        if frames >= t and videos >= n:
            return self.decode(pos, feat)
        rgb = logits = None
        for i in range(0, t, frames):
            for v in range(0, n, videos):
                block = (slice(v, v + videos), slice(i, i + frames))
                part_rgb, part_logits = self.decode(pos[block], feat[block])
                if rgb is None:
                    rgb = part_rgb.new_empty((n, t, *part_rgb.shape[2:]))
                    logits = part_logits.new_empty((n, t, *part_logits.shape[2:]))
                rgb[block], logits[block] = part_rgb, part_logits
        return rgb, logits

    # ------------------------------------------------------------------ the Pyro program
    def plates(self, n: int):
        """The ``videos`` (dim -2) and ``slots`` (dim -1) plates of ``n`` videos."""
        return (pyro.plate("videos", n, dim=-2), pyro.plate("slots", self.config.num_slots, dim=-1))

    def transition_step(self, t: int, h: SlotState, select, update_dist,
                        i: Optional[int] = None, stay: bool = False) -> Step:
        """One transition h_{t-1} -> h_t, the recurrence of both programs (Eqs. 2 and 3).

        Builds the candidates s_m = f_m(h_{t-1}), samples the module choice ``r_{t}`` from the
        relaxed one-hot with logits ``select(cand_pos, cand_feat)``, mixes the candidates, samples
        the update ``z_{t}`` from the Normal with ``update_dist(mix_pos, mix_feat)`` = (loc,
        scale) under ``poutine.scale(z_kl_weight)``, and applies g.  The model passes the prior's
        pieces (:meth:`prior_step`), the guide the posterior's (:meth:`guide_step`).  Called
        inside the ``videos`` x ``slots`` plates (:meth:`plates`).

        ``i``: the iteration of a VIM-k transition (sites ``r_{t}_{i}``, ``z_{t}_{i}``);
        ``stay``: add the unchanged state as an extra candidate M (inference only: a VIM-k
        planner may then stop once no module brings the slot closer to the observation).

        With binary modules (:mod:`pyro_vim.interactions`) ``select`` scores every (module,
        partner) pair's candidate, ``r_{t}`` is drawn over the M + B modules and the partner
        ``p_{t}`` given ``r_{t}``; with a velocity, the candidates' features are (vel, feat).
        """
        cand = self.candidate_states(h, stay=stay)
        logits = select(cand.pos, cand.rest)
        pairs = self.interactions
        r_logits = logits if pairs is None else pairs.module_logits(logits)
        r = pyro.sample(sites.r_site(t, i),
                        SafeRelaxedOneHotCategorical(self.temperature, logits=r_logits))
        weights = self.choices.weights(r, self.training)
        p_logits = p = None
        if pairs is not None:                             # p_t | r_t: the module's partner
            p_logits = pairs.partner_logits(logits, r)
            p = pyro.sample(sites.p_site(t, i),
                            SafeRelaxedOneHotCategorical(self.temperature, logits=p_logits))
            weights = pairs.pair_weights(weights, self.choices.weights(p, self.training))
        mix = self.mix_states(weights, cand)
        z_loc, z_scale = update_dist(mix.pos, mix.rest)
        with poutine.scale(scale=self.z_kl_weight):
            z = pyro.sample(sites.z_site(t, i), dist.Normal(z_loc, z_scale).to_event(1))
        return Step(self.update(mix.pos, mix.rest, z), r_logits, r, mix.pos, mix.feat,
                    p_logits, p, mix.vel)

    @property
    def hard_choices(self) -> bool:
        """Whether the candidates are mixed by the hard choice now (:mod:`pyro_vim.choices`)."""
        return self.choices.hard(self.training)

    def prior_step(self, t: int, h: SlotState, i: Optional[int] = None,
                   start_logits: Optional[torch.Tensor] = None) -> Step:
        """p(r_t | h_{t-1}) by the selection prior, p(z_t | h_{t-1}, r_t) = N(MLP(f(h, r))).

        ``start_logits``: the selection prior's logits to use instead of scoring ``h``'s
        candidates (a VIM-k transition with ``iteration_prior="start"``: every iteration's choice
        is drawn from the prior of the transition's first state, the first iteration's logits)."""
        def select(cand_pos, cand_feat):
            if start_logits is not None:
                return start_logits
            return self.prior.logits(h.pos, h.rest, cand_pos, cand_feat)
        return self.transition_step(t, h, select, self.latent_update_prior, i)

    def guide_step(self, t: int, h: SlotState, obs, i: Optional[int] = None,
                   final: bool = True, stay: bool = False) -> Step:
        """q(r_t | h_{t-1}, x_t) and q(z_t | h_{t-1}, r_t, x_t) from the slots' observation
        ``obs`` of frame t (:meth:`observe`), both the guide's (``self.posterior``).

        In a VIM-k transition every iteration compares its candidates with the same observed
        state (a planner in module space); only the ``final`` iteration's update moves the slot
        onto the observation, earlier ones leave the position where the modules put it.
        ``stay`` (inference only): the unchanged state is candidate M, scored by the guide's
        ``stay_logits``."""
        guide = self.posterior
        if stay and self.interactions is not None:
            raise ValueError("stay (a VIM-k planner's choice) is not defined with binary "
                             "modules (interaction.num_binary_modules); infer with stay=False")

        def select(cand_pos, cand_feat):
            if not stay:
                return guide.selection_logits(h, cand_pos, cand_feat, obs)
            if not callable(getattr(guide, "stay_logits", None)):
                raise ValueError(f"the guide {type(guide).__name__} has no stay_logits, so it "
                                 "cannot score a 'stay' choice; infer with stay=False")
            m = self.config.num_modules
            logits = guide.selection_logits(h, cand_pos[..., :m, :], cand_feat[..., :m, :], obs)
            return torch.cat([logits, guide.stay_logits(logits, cand_pos, obs)], -1)

        def update(mix_pos, mix_feat):
            if final:
                return guide.update_posterior(h, mix_pos, mix_feat, obs)
            return guide.update_posterior(h, mix_pos, mix_feat, obs, final=False)

        return self.transition_step(t, h, select, update, i, stay)

    def prior_transition(self, t: int, h: SlotState) -> SlotState:
        """h_{t-1} -> h_t under the prior: one :meth:`prior_step` (the paper's), or k of them in a
        VIM-k (``config.iterations``).  With ``iteration_prior="start"`` every iteration's
        choice is drawn from p(r | h_{t-1}), the first iteration's logits, so the k choices are
        i.i.d. given h_{t-1}, as the compositional data's moves are (a prior per iteration can
        fit the order of a diagonal module set, one shared prior cannot; BENCHMARKS.md, "Fig. 6:
        why VIM-2 finds diagonal modules");
        ``"current"`` scores each iteration's candidates from the state the previous one made."""
        k = self.config.iterations
        shared = k > 1 and self.config.iteration_prior == "start"
        logits = None
        for i in self.iterate(k):
            step = self.prior_step(t, h, i, logits)
            h = step.h
            if shared and logits is None:
                logits = step.logits
        return h                                  # only the state after the last iteration

    def guide_transition(self, t: int, h: SlotState, obs, k: int, stay: bool = False):
        """h_{t-1} -> h_t under the guide, given the observation ``obs`` of frame t: k
        :meth:`guide_step` iterations, the last of which moves the slot onto the observation.
        Returns h_t and a :class:`StepRecord` per iteration."""
        records = []
        for i in self.iterate(k):
            step = self.guide_step(t, h, obs, i, final=i is None or i == k, stay=stay)
            h = step.h
            records.append(StepRecord(step.logits, step.r, obs.pos, step.mix_pos,
                                      self.state_norm(step.mix_feat), step.partner_logits,
                                      step.partner, step.mix_vel))
        return h, records

    @contextlib.contextmanager
    def using_iterations(self, k: int):
        """Temporarily run the programs with ``k`` iterations per transition (e.g. a VIM-2
        trained on compositions, tested with one module per atomic move)."""
        saved = self.config
        self.config = saved.replace(iterations=k)
        try:
            yield self
        finally:
            self.config = saved

    def iterate(self, k: int):
        """The iterations of a transition: ``[None]`` for k = 1 (sites ``r_{t}``), else 1..k."""
        return [None] if k == 1 else list(range(1, k + 1))

    def discovery(self, frames: torch.Tensor, features: Optional[torch.Tensor] = None):
        """Sample ``z_0`` from p(z_0 | c), c = frames[:, 0]: slot attention on the context frame
        (the same distribution in the model and the guide: the guide's q(z_0 | c) is the
        discovery model).  ``features``: the frames' encodings (N, T, HW, C), when the caller
        has them (the guide encodes every frame at once).  With ``interaction.velocity``, c is
        the first two frames (:meth:`discover`).  Returns h_0 and the slots' mean colours.
        Called inside the ``videos`` x ``slots`` plates."""
        first = self.encoder(frames[:, 0]) if features is None else features[:, 0]
        second = None
        if self.config.velocity and frames.shape[1] > 1:
            second = (self.encoder(frames[:, 1]) if features is None else features[:, 1],
                      frames[:, 1])
        loc, scale, colour = self.discover(first, frames[:, 0], second)
        z0 = pyro.sample(sites.Z0, dist.Normal(loc, scale).to_event(1))
        return self.state_of(z0), colour

    def model(self, frames: torch.Tensor, horizon: int = 0):
        """p(x, r, z | c) of Eq. 2; ``frames`` (N, T, 3, H, W) in [0, 1], c = frames[:, 0].

        With ``horizon`` H > 0 the recurrence continues H steps past the last frame, sampling
        ``r_{t}`` and ``z_{t}`` from the prior, and the rollout is recorded in the deterministic
        sites ``future_frames`` (N, H, 3, H, W), ``future_positions`` (N, H, K, 2) in pixels and
        ``future_masks`` (N, H, K, H, W); then a single context frame (T = 1) is allowed.
        """
        horizon = _check_horizon(horizon)
        return self._model(self.check_frames(frames, min_frames=1 if horizon else 2),
                           horizon=horizon)

    def guide(self, frames: torch.Tensor, horizon: int = 0):
        """q(z_0, r, z | x) of Eq. 3 (amortised, slot attention); ``horizon`` is ignored."""
        horizon = _check_horizon(horizon)
        return self._guide(self.check_frames(frames, min_frames=1 if horizon else 2))

    def _register(self):
        """Put every parameter (the plain torch sub-networks' too) in Pyro's param store, so
        ``SVI(vim.model, vim.guide, pyro.optim.Adam(...), Trace_ELBO())`` trains them all.  The
        name is unique per instance, so several models can share one param store."""
        pyro.module(self.param_store_name, self)

    @property
    def param_store_name(self) -> str:
        return f"vim_{id(self):x}"

    def _model(self, frames: torch.Tensor, observe: bool = True, horizon: int = 0):
        self._register()
        n, t_len = frames.shape[:2]
        videos, slots = self.plates(n)
        with videos, slots:
            h, _ = self.discovery(frames)                     # z_0 ~ p(z_0 | c)
            states = [h]
            for t in pyro.markov(range(1, t_len + horizon)):
                h = self.prior_transition(t, h)               # r_t, z_t ~ p(. | h_{t-1})
                states.append(h)

        likelihood = self.likelihood(states)
        observed = SpatialGaussianMixture(likelihood.means[:, :t_len],
                                          likelihood.mask_logits[:, :t_len], likelihood.scale)
        if observe:
            with videos:
                pyro.sample(sites.X, _lift(observed), obs=frames.unsqueeze(1))
        if horizon:
            pos = self.to_pixels(torch.stack([h.pos for h in states[t_len:]], 1))
            future = SpatialGaussianMixture(likelihood.means[:, t_len:],
                                            likelihood.mask_logits[:, t_len:], likelihood.scale)
            masks = future.masks                  # the future frames only, softmax taken once
            for name, value in (("future_positions", pos),
                                ("future_frames", (masks.unsqueeze(-3) * future.means).sum(-4)),
                                ("future_masks", masks)):
                pyro.deterministic(name, value, event_dim=value.dim())
        return states, likelihood

    def to_pixels(self, pos: torch.Tensor) -> torch.Tensor:
        """Normalised (x, y) -> pixels (x = column, y = row)."""
        return coords_to_pixels(pos, self.config.image_size)

    def _guide(self, frames: torch.Tensor, iterations: Optional[int] = None, stay: bool = False,
               encode_chunk: Optional[int] = None):
        """The guide's recurrence; returns the states h_0..h_{T-1} and, per transition, a list
        of :class:`StepRecord` (one per iteration: selection logits, choice, observed position,
        position after the module)."""
        self._register()
        k = self.config.iterations if iterations is None else iterations
        n, t_len = frames.shape[:2]
        if encode_chunk is None and not torch.is_grad_enabled():
            encode_chunk = self.chunk_frames or None          # bounded memory, same features
        features = self.encode(frames, encode_chunk)      # every frame in one call
        videos, slots = self.plates(n)
        with videos, slots:
            h, colour = self.discovery(frames, features)
            states, records = [h], []
            for t in pyro.markov(range(1, t_len)):
                obs = self.observe(features[:, t], frames[:, t], h, colour)   # x̂_t, Eq. 4
                colour = obs.colour
                h, per_iteration = self.guide_transition(t, h, obs, k, stay)  # r_t, z_t ~ q
                states.append(h)
                records.append(per_iteration)
        return states, records

    # ------------------------------------------------------------------ training protocol
    def programs(self, step: int):
        """The (model, guide) pair of global training step ``step`` (Appendix A.2): during the
        first ``config.pretrain_steps`` steps slot-attention pre-training (the programs on single
        frames: discovery and decoder only), then the full programs with the Gaussian-KL weight
        of the annealing schedule (``config.z_kl_weight_at``)."""
        c = self.config
        if step < c.pretrain_steps:
            return self._model, self._guide
        self.z_kl_weight = c.z_kl_weight_at(step - c.pretrain_steps)
        return self.model, self.guide

    def perception_parameters(self):
        """Encoder and slot attention: what ``config.freeze_perception`` keeps fixed."""
        return list(self.encoder.parameters()) + list(self.slot_attention.parameters())

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, frames: torch.Tensor, iterations: Optional[int] = None,
              stay: Optional[bool] = None, chunk: int = 16,
              decode: bool = True) -> Dict[str, torch.Tensor]:
        """Posterior summary with hard (argmax) module choices and mean updates: the guide run
        under :class:`~pyro_vim.handlers.UseMeans`.

        ``iterations`` k (default ``config.iterations``): module selections per transition
        (VIM-k); ``stay`` (default: k > 1) lets an iteration keep the slot where it is when no
        module brings it closer to the observation (choice index M).

        ``chunk``: frames encoded and decoded at a time (bounds memory for long videos; the
        decoder also takes at most :attr:`decode_batch` (video, frame) pairs per call; the
        results are the same up to float rounding).

        ``decode=False`` skips the decoder: no ``masks`` and ``recon`` (for callers that need
        only the slots and choices).

        Returns ``slots`` (N, T, K, 2 + D) = (pos, feat), ``positions`` (N, T, K, 2) in pixels (x =
        column, y = row), ``selection_probs`` (N, T-1, K, M), ``selections`` (N, T-1, K) (the first
        iteration's most probable module; "stay" is not a module), ``masks`` (N, T, K, H, W),
        ``recon`` (N, T, 3, H, W) and, per iteration, ``iteration_selections`` (N, T-1, k, K) and
        ``iteration_positions`` (N, T-1, k, K, 2) in pixels: each slot's position after each
        iteration's module, before the update z (what the chosen modules compose, not what the
        observation corrects), and the whole states ``iteration_slots`` (N, T-1, k, K, 2 + D)
        (drawn with :meth:`render`).

        With binary modules (``interaction.num_binary_modules`` B > 0) the selections index the
        M + B modules (binary module b is M + b), and ``partners`` (N, T-1, K) holds the partner
        slot of each slot's choice (-1: "none"), ``partner_probs`` (N, T-1, K, K) the partner
        site's probabilities (the other slots in order, "none" last).  With a velocity
        (``interaction.velocity``), ``velocities`` (N, T, K, 2) in pixels per frame.
        """
        frames = self.check_frames(frames)
        k = self.config.iterations if iterations is None else iterations
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"iterations must be a positive int, got {k!r}")
        if k != 1 and self.config.interaction.enabled:
            raise ValueError("the interaction features (velocity, binary modules) make one "
                             f"module selection per transition; got iterations={k}")
        stay = k > 1 if stay is None else bool(stay)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk must be a positive int, got {chunk!r}")
        with UseMeans():
            states, records = self._guide(frames, iterations=k, stay=stay, encode_chunk=chunk)
        pos = torch.stack([h.pos for h in states], 1)
        feat = torch.stack([h.feat for h in states], 1)
        masks, recon = [], []              # decoded ``chunk`` frames at a time (bounded memory)
        for i in range(0, pos.shape[1] if decode else 0, chunk):
            rgb, logits = self.decode_blocks(pos[:, i:i + chunk], feat[:, i:i + chunk], chunk)
            mixture = SpatialGaussianMixture(rgb, logits, self.config.sigma_x)
            masks.append(mixture.masks)
            recon.append(mixture.mean)
        m = self.config.num_choices
        probs = torch.stack([its[0].selection_logits[..., :m].softmax(-1) for its in records], 1)
        choices = torch.stack([torch.stack([r.selection.argmax(-1) for r in its], 1)
                               for its in records], 1)                     # (N, T-1, k, K)
        module_pos = torch.stack([torch.stack([r.module_pos for r in its], 1)
                                  for its in records], 1)                  # (N, T-1, k, K, 2)
        module_feat = torch.stack([torch.stack([r.module_feat for r in its], 1)
                                   for its in records], 1)                 # (N, T-1, k, K, D)
        extra = {}
        if self.interactions is not None:
            partner = torch.stack([its[0].partner.argmax(-1) for its in records], 1)
            extra["partners"] = self.interactions.partner_slots(partner)
            extra["partner_probs"] = torch.stack([its[0].partner_logits.softmax(-1)
                                                  for its in records], 1)
        if states[0].vel is not None:
            extra["velocities"] = torch.stack([h.vel for h in states], 1) * (
                (self.config.image_size - 1) / 2.0)
        return {
            "slots": torch.cat([pos, feat], -1),
            "positions": self.to_pixels(pos),
            "selection_probs": probs,
            "selections": probs.argmax(-1),          # first iteration, modules only
            "iteration_selections": choices,
            "iteration_positions": self.to_pixels(module_pos),
            "iteration_slots": torch.cat([module_pos, module_feat], -1),
            **({"masks": torch.cat(masks, 1), "recon": torch.cat(recon, 1)} if decode else {}),
            **extra,
        }

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, **extra) -> None:
        """Write an atomic checkpoint: the config (model family, prior and guide by name), the
        state and ``extra`` entries."""
        from .checkpoint import save_checkpoint
        if self.custom_parts:
            extra.setdefault("custom_parts", dict(self.custom_parts))
        save_checkpoint(path, model=self, **extra)

    @classmethod
    def load(cls, path: str, map_location="cpu", prior: Optional[nn.Module] = None,
             guide: Optional[nn.Module] = None) -> "VIM":
        """Rebuild exactly what was saved: the config's prior and guide, with the saved state.
        A checkpoint of a model with an unregistered prior or guide needs that part again as
        ``prior=`` / ``guide=``."""
        from .checkpoint import load_checkpoint, load_model_state
        ckpt = load_checkpoint(path, map_location=map_location)
        config = VIMConfig.from_saved(ckpt["config"])
        custom = ckpt.get("custom_parts") or {}
        for kind, part in (("prior", prior), ("guide", guide)):
            if kind in custom and part is None:
                raise ValueError(f"{path!r} was trained with the unregistered {kind} "
                                 f"{custom[kind]}; pass an instance as VIM.load(path, {kind}=...) "
                                 f"or register its class with pyro_vim.registry.register_{kind}")
        vim = cls(config, prior=prior, guide=guide)
        load_model_state(vim, ckpt)
        return vim

    @classmethod
    def from_config(cls, config: VIMConfig) -> "VIM":
        return cls(config)

    def __repr__(self):
        c = self.config
        binary = f", B={c.num_binary_modules}" if c.num_binary_modules else ""
        return f"VIM(K={c.num_slots}, M={c.num_modules}{binary}, image_size={c.image_size})"


def _check_horizon(horizon) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 0:
        raise ValueError(f"horizon must be a non-negative int, got {horizon!r}")
    return horizon


def _lift(likelihood: SpatialGaussianMixture):
    """(N, T) x (3, H, W) mixture -> batch (N, 1), event (T, 3, H, W) for the ``videos`` plate."""
    lifted = SpatialGaussianMixture(likelihood.means.unsqueeze(1),
                                    likelihood.mask_logits.unsqueeze(1), likelihood.scale)
    return lifted.to_event(1)

