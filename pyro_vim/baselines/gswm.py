"""A compact G-SWM baseline (Lin et al. 2020, "Improving Generative Imagination in Object-Centric
World Models") as a Pyro model and amortised guide, for the comparison of the VIM paper's
Sec. 5.2 / Fig. 4.

G-SWM describes every object k by its presence, where (position and size) and what (appearance)
latents; frames are rendered by glimpse decoders placed with a spatial transformer and composited
by depth; one monolithic propagation (per-object LSTMs with shared weights and a hierarchical
dynamics latent ``z_dyna``) moves the objects from frame to frame.  This compact version keeps
that structure at the sizes of VIM's cpu preset (32x32 images, K = 4 objects, small networks)
and leaves out what the Random Walk data never need: no background module (a learned constant
colour), no discovery after the first frame, no object-object interaction (the balls do not
interact) and no per-step presence (objects neither appear nor vanish; presence is decided at
discovery and kept).

Sites, under the plates ``videos`` (dim -2) and ``objects`` (dim -1, K = ``num_slots``):

* ``z_pres_0``  :class:`LogitRelaxedBernoulli` (batch (N, K)): the binary-concrete presence in
  logit space; presence = sigmoid(z_pres_0).  The same class in model and guide, so its
  KL is exact in logit space (Maddison et al. 2017's recommended parameterisation).
* ``z_where_0`` Normal (event 4): (x, y) position in normalised image coordinates
  (:mod:`pyro_vim.nn.encoder`'s convention, x = column) and the two scale logits of the glimpse
  (half-extent = ``scale_min + (scale_max - scale_min) * sigmoid(logit)``, normalised units).
* ``z_what_0``  Normal (event ``slot_dim``): appearance.
* ``z_dyna_{t}``, ``z_where_{t}``, ``z_what_{t}`` (t = 1..T-1): the propagation into frame t:
  the dynamics latent (event ``extra["z_dyna_dim"]``) and the gated residual updates of where
  and what.  With k > 1 propagation iterations between two frames (multi-step G-SWM, see
  :meth:`GSWM.infer`) the names are ``z_dyna_{t}_{i}`` etc., i = 1..k.
* ``x``         Normal (event (T, 3, H, W), batch (N, 1)): every frame, observed.

Propagation of object k into frame t (shared weights over objects; state: where, what, the
LSTM's (h, c)):

* prior   p(z_dyna | where, what, h) = N(MLP([where, what, h]));
  posterior q(z_dyna | where, what, h, e) with e the encoding of a proposal glimpse of frame t
  around the object's previous position (``extra["proposal_ratio"]`` times its size);
* (h, c) <- LSTMCell([where, what, z_dyna], (h, c));
* where_t ~ N(where + sigmoid(g_w) * d_w, s_w) and what_t ~ N(what + sigmoid(g_a) * d_a, s_a),
  (d, g, s) = MLP([h, z_dyna]) (gated residual updates); the posteriors add a correction from
  the proposal glimpse (where) and from the glimpse at the sampled where_t (what).

Discovery (t = 0): K proposals over the encoder map (:meth:`GSWM.proposals`): an objectness map
(a learned score of the per-pixel features plus the residual of the frame from the learned
background) is explained away one proposal at a time (local soft-argmax around the maximum, then
suppression of its neighbourhood); each proposal's position and pooled feature feed the where
and presence heads; what comes from the glimpse encoder on the crop at the sampled where.

Rendering: each object's glimpse decoder gives RGB, an alpha map and a depth (from z_what); the
glimpses are placed by the inverse spatial transformer; the visible weight of object k at a
pixel is m_k = a_k * softmax_k(d_k + log a_k) with a_k = presence_k * alpha_k, and the frame is
sum_k m_k rgb_k + (1 - sum_k m_k) * background.

G-SWM-specific settings live in ``config.extra`` (defaults in :data:`DEFAULTS`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from ..config import VIMConfig
from ..handlers import UseMeans
from ..nn import MLP, Encoder, coordinate_grid, coords_to_pixels
from ..nn.functional import inverse_softplus
from ..registry import register_model
from .med import med

__all__ = ["GSWM", "LogitRelaxedBernoulli", "DEFAULTS", "gswm_settings"]

#: G-SWM settings read from ``config.extra`` (with these defaults).
DEFAULTS: Dict[str, Any] = {
    "glimpse_size": 8,          # side of the glimpse (pixels of the crop / decoded patch)
    "z_dyna_dim": 8,            # size of the dynamics latent z_dyna
    "scale_min": 0.1,           # glimpse half-extent range, normalised units (1 = half image)
    "scale_max": 0.4,
    "proposal_ratio": 2.0,      # proposal glimpse of the propagation posterior, x object size
    "discovery_radius": 0.2,    # std of a discovery proposal's attention window (normalised)
    "residual_gain": 10.0,      # weight of the background residual in the objectness map
    "pres_prior": 0.5,          # prior presence probability at discovery
    "pres_temperature": 0.5,    # binary-concrete temperature of z_pres
    "where_prior_scale": 1.0,   # std of p(z_where_0) (position and scale logits)
    "kl_weight_start": 1.0,     # poutine.scale of the latent sites, annealed linearly to 1
                                # over config.z_kl_anneal_steps (1.0: no annealing)
}


def gswm_settings(config: VIMConfig) -> Dict[str, Any]:
    """``DEFAULTS`` updated with ``config.extra``'s G-SWM keys, checked (ValueError)."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in config.extra.items() if k in DEFAULTS})
    for name in ("glimpse_size", "z_dyna_dim"):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"config.extra[{name!r}] must be a positive int, got {v!r}")
    for name in ("scale_min", "scale_max", "proposal_ratio", "discovery_radius",
                 "residual_gain",
                 "pres_temperature", "where_prior_scale", "kl_weight_start"):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
            raise ValueError(f"config.extra[{name!r}] must be a positive finite number, got {v!r}")
    if not out["scale_min"] < out["scale_max"]:
        raise ValueError("config.extra needs scale_min < scale_max")
    p = out["pres_prior"]
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < 1:
        raise ValueError(f"config.extra['pres_prior'] must lie in (0, 1), got {p!r}")
    return out


class LogitRelaxedBernoulli(dist.Logistic):
    """A relaxed Bernoulli (binary concrete, Maddison et al. 2017) in logit space.

    With logits ``l`` and temperature ``tau`` the relaxed sample y in (0, 1) is
    ``sigmoid((l + L) / tau)``, L ~ Logistic(0, 1); this distribution is that of the logit
    ``(l + L) / tau`` = Logistic(l / tau, 1 / tau), whose density is finite everywhere (the
    relaxed sample itself saturates to exactly 0 or 1 in float32, where its density is not
    defined).  ``mean`` is ``l / tau`` (so ``sigmoid(mean)`` is a presence of 0 or 1 at low
    temperature, the hard mode's side).
    """

    def __init__(self, logits: torch.Tensor, temperature, validate_args=None):
        temperature = torch.as_tensor(temperature, dtype=logits.dtype, device=logits.device)
        self.logits, self.temperature = logits, temperature
        super().__init__(logits / temperature, 1.0 / temperature.expand_as(logits),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LogitRelaxedBernoulli, _instance)
        new.logits = self.logits.expand(batch_shape)
        new.temperature = self.temperature
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape=torch.Size()):
        # the uniform draw kept off 0 and 1, where the logistic's inverse CDF is infinite
        u = self.loc.new_empty(self._extended_shape(sample_shape)).uniform_()
        eps = torch.finfo(u.dtype).eps
        return self.icdf(u.clamp(eps, 1 - eps))


class Where(NamedTuple):
    """Decoded z_where: position (..., 2) and glimpse half-extent (..., 2), normalised units."""
    pos: torch.Tensor
    scale: torch.Tensor


class State(NamedTuple):
    """Every object's state between two propagation steps."""
    where: torch.Tensor     # (N, K, 4) z_where
    what: torch.Tensor      # (N, K, D) z_what
    h: torch.Tensor         # (N, K, Hd) LSTM output
    c: torch.Tensor         # (N, K, Hd) LSTM cell


def _scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + 1e-3


def _small_last_layer(mlp: nn.Sequential, gain: float = 0.01) -> None:
    with torch.no_grad():
        mlp[-1].weight.mul_(gain)
        mlp[-1].bias.zero_()


@register_model("gswm")
class GSWM(PyroModule):
    """Compact G-SWM.  ``GSWM(config)`` (``config.model == "gswm"``); ``.model(frames)``,
    ``.guide(frames)``; see the module docstring for the sites and the architecture."""

    def __init__(self, config: Optional[VIMConfig] = None):
        super().__init__()
        if config is None:
            config = VIMConfig.preset("cpu", model="gswm")
        if not isinstance(config, VIMConfig):
            raise TypeError(f"GSWM expects a VIMConfig, got {type(config).__name__}")
        config.validate()
        if config.model != "gswm":
            raise ValueError(f"GSWM was given a config for model {config.model!r}; build it with "
                             "pyro_vim.models.build_model(config)")
        self.config = c = config
        s = self.settings = gswm_settings(c)
        d, dd, hid = c.slot_dim, s["z_dyna_dim"], c.module_hidden
        g, ch = s["glimpse_size"], c.encoder_channels
        self.glimpse = g
        # discovery: per-pixel features and objectness, K proposals found in turn
        self.encoder = Encoder(ch, c.encoder_kernel, c.encoder_layers)
        self.objectness = nn.Linear(ch, 1)
        with torch.no_grad():                    # at first: the background residual alone
            self.objectness.weight.zero_()
            self.objectness.bias.zero_()
        self.where_head = MLP(ch, hid, 8)            # position offset, scale logits, 4 stds
        self.pres_head = MLP(ch, hid, 1)
        _small_last_layer(self.where_head, 0.1)
        # glimpse encoder (crop -> what posterior), glimpse decoder (what -> rgb, alpha, depth)
        self.glimpse_encoder = nn.Sequential(
            nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(ch * ((g + 1) // 2) ** 2, hid), nn.ReLU())
        self.what_head = nn.Linear(hid, 2 * d)
        self.glimpse_decoder = MLP(d, c.decoder_channels * 4, 4 * g * g)
        self.depth_head = nn.Linear(d, 1)
        # learned constant background colour (logits), initialised dark
        self.background = nn.Parameter(torch.full((3,), -3.0))
        # propagation (one monolithic module, shared over objects)
        self.proposal_encoder = nn.Sequential(
            nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(ch * ((g + 1) // 2) ** 2, hid), nn.ReLU())
        self.dyna_prior = MLP(4 + d + hid, hid, 2 * dd)
        self.dyna_posterior = MLP(4 + d + hid + hid, hid, 2 * dd)
        self.lstm = nn.LSTMCell(4 + d + dd, hid)
        self.where_update = MLP(hid + dd, hid, 12)       # delta, gate, std
        self.what_update = MLP(hid + dd, hid, 3 * d)
        self.where_correction = MLP(4 + hid + hid, hid, 8)  # posterior: delta, std
        self.what_correction = MLP(d + hid, hid, 2 * d)
        for mlp in (self.where_update, self.what_update, self.where_correction,
                    self.what_correction):
            _small_last_layer(mlp)
        with torch.no_grad():      # small prior steps of where (about a pixel) and what at first
            self.where_update[-1].bias[8:].fill_(inverse_softplus(0.05))
            self.what_update[-1].bias[2 * d:].fill_(inverse_softplus(0.1))
            self.where_correction[-1].bias[4:].fill_(inverse_softplus(0.05))
            self.what_correction[-1].bias[d:].fill_(inverse_softplus(0.1))
        self.register_buffer("grid", coordinate_grid(c.image_size, c.image_size))
        self.kl_weight = 1.0

    # ------------------------------------------------------------------ validation
    def check_frames(self, frames, min_frames: int = 1) -> torch.Tensor:
        """Validate a (N, T, 3, H, W) float tensor in [0, 1]; raise a clear error otherwise."""
        size = self.config.image_size
        expected = f"(N, T, 3, {size}, {size})"
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"frames must be a torch.Tensor of shape {expected}, got "
                            f"{type(frames).__name__}")
        if not frames.is_floating_point():
            raise TypeError(f"frames must be floating point in [0, 1], got {frames.dtype}")
        if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[-2:] != (size, size):
            raise ValueError(f"frames must have shape {expected}, got {tuple(frames.shape)}")
        if frames.shape[0] == 0 or frames.shape[1] < min_frames:
            raise ValueError(f"frames must hold at least one video of at least {min_frames} "
                             f"frame(s), got shape {tuple(frames.shape)}")
        if not torch.isfinite(frames).all() or frames.min() < 0 or frames.max() > 1:
            raise ValueError("frames must be finite and lie in [0, 1]")
        param = next(self.parameters())
        return frames.to(device=param.device, dtype=param.dtype)

    # ------------------------------------------------------------------ deterministic pieces
    def decode_where(self, where: torch.Tensor) -> Where:
        s = self.settings
        scale = s["scale_min"] + (s["scale_max"] - s["scale_min"]) * torch.sigmoid(where[..., 2:])
        return Where(where[..., :2], scale)

    def crop(self, images: torch.Tensor, where: Where, ratio: float = 1.0) -> torch.Tensor:
        """Spatial-transformer crops: images (N, 3, H, W), where (N, K, 2) -> (N, K, 3, g, g)."""
        n, k = where.pos.shape[:2]
        sx, sy = (where.scale * ratio).unbind(-1)
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, where.pos[..., 0]], -1),
                             torch.stack([zero, sy, where.pos[..., 1]], -1)], -2)
        grid = F.affine_grid(theta.reshape(n * k, 2, 3), [n * k, 3, self.glimpse, self.glimpse],
                             align_corners=True)
        src = images.unsqueeze(1).expand(n, k, *images.shape[1:]).reshape(n * k, *images.shape[1:])
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.reshape(n, k, 3, self.glimpse, self.glimpse)

    def encode_glimpses(self, net: nn.Module, glimpses: torch.Tensor) -> torch.Tensor:
        return net(glimpses.flatten(0, 1)).reshape(*glimpses.shape[:2], -1)

    def what_posterior(self, glimpses: torch.Tensor):
        loc, raw = self.what_head(self.encode_glimpses(self.glimpse_encoder, glimpses)).chunk(2, -1)
        return loc, _scale(raw)

    def render(self, where: torch.Tensor, what: torch.Tensor, presence: torch.Tensor):
        """Composite the objects.  where (..., K, 4), what (..., K, D), presence (..., K) ->
        (frames (..., 3, H, W), visible masks (..., K, H, W))."""
        lead, k = where.shape[:-2], where.shape[-2]
        size, g = self.config.image_size, self.glimpse
        w = self.decode_where(where.reshape(-1, 4))
        out = self.glimpse_decoder(what.reshape(-1, what.shape[-1])).reshape(-1, 4, g, g)
        patch = torch.cat([torch.sigmoid(out[:, :3]), torch.sigmoid(out[:, 3:])], 1)
        sx, sy = w.scale.unbind(-1)
        zero = torch.zeros_like(sx)
        # image coordinate u -> glimpse coordinate (u - pos) / scale
        theta = torch.stack([torch.stack([1 / sx, zero, -w.pos[:, 0] / sx], -1),
                             torch.stack([zero, 1 / sy, -w.pos[:, 1] / sy], -1)], -2)
        grid = F.affine_grid(theta, [theta.shape[0], 4, size, size], align_corners=True)
        placed = F.grid_sample(patch, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=True).reshape(*lead, k, 4, size, size)
        rgb, alpha = placed[..., :3, :, :], placed[..., 3, :, :]
        a = alpha * presence[..., None, None]                                   # (..., K, H, W)
        depth = 3.0 * torch.tanh(self.depth_head(what)).reshape(*lead, k, 1, 1)
        weights = torch.softmax(depth + torch.log(a + 1e-6), dim=-3)           # over objects
        masks = weights * a
        background = torch.sigmoid(self.background).reshape(3, 1, 1)
        frames = (masks.unsqueeze(-3) * rgb).sum(-4) + (1 - masks.sum(-3, keepdim=True)) \
            * background
        return frames, masks

    def initial_lstm(self, n: int):
        hid, k = self.config.module_hidden, self.config.num_slots
        zeros = self.grid.new_zeros(n, k, hid)
        return zeros, zeros

    # ------------------------------------------------------------------ distributions
    def plates(self, n: int):
        return (pyro.plate("videos", n, dim=-2),
                pyro.plate("objects", self.config.num_slots, dim=-1))

    def discovery_prior(self, n: int):
        s, c = self.settings, self.config
        k = c.num_slots
        logit = math.log(s["pres_prior"] / (1 - s["pres_prior"]))
        pres = LogitRelaxedBernoulli(self.grid.new_full((n, k), logit), s["pres_temperature"])
        where = dist.Normal(self.grid.new_zeros(n, k, 4),
                            self.grid.new_full((n, k, 4), s["where_prior_scale"])).to_event(1)
        what = dist.Normal(self.grid.new_zeros(n, k, c.slot_dim),
                           self.grid.new_ones(n, k, c.slot_dim)).to_event(1)
        return pres, where, what

    def proposals(self, frame: torch.Tensor):
        """K proposals over the encoder map, found in turn: (positions (N, K, 2), pooled
        features (N, K, C)).

        The objectness map is a learned per-pixel score of the encoder features plus
        ``residual_gain`` times the squared residual of the frame from the learned background
        colour.  Proposal k is the attention-weighted centroid of the objectness around the
        current maximum (a Gaussian window of std ``discovery_radius``); its neighbourhood (a
        Gaussian of std ``discovery_radius / 2`` scaled by 1000) is then suppressed, so the next
        proposal finds another object (the K proposals explain the
        frame away one after another, as non-maximum suppression)."""
        feats = self.encoder(frame)                                     # (N, HW, C)
        s = self.settings
        background = torch.sigmoid(self.background).reshape(1, 3, 1, 1)
        residual = (frame - background).pow(2).sum(1).flatten(1)        # (N, HW)
        score = self.objectness(feats).squeeze(-1) + s["residual_gain"] * residual
        width2 = s["discovery_radius"] ** 2
        positions, pooled = [], []
        for _ in range(self.config.num_slots):
            centre = self.grid[score.detach().argmax(-1)]               # (N, 2)
            d2 = (self.grid.unsqueeze(0) - centre.unsqueeze(1)).pow(2).sum(-1)
            attn = (score - 0.5 * d2 / width2).softmax(-1)              # (N, HW)
            pos = attn @ self.grid
            positions.append(pos)
            pooled.append((attn.unsqueeze(1) @ feats).squeeze(1))
            near = (self.grid.unsqueeze(0) - pos.unsqueeze(1)).pow(2).sum(-1)
            # suppression: about 2.6 x discovery_radius / 2 wide (a ball's radius by default)
            score = score - 1e3 * torch.exp(-2.0 * near / width2)
        return torch.stack(positions, 1), torch.stack(pooled, 1)

    def discovery_posterior(self, frame: torch.Tensor):
        """q(z_pres_0), q(z_where_0) from the K proposals (:meth:`proposals`)."""
        pos, pooled = self.proposals(frame)
        out = self.where_head(pooled)
        loc = torch.cat([pos + out[..., :2], out[..., 2:4]], -1)
        where = dist.Normal(loc, _scale(out[..., 4:] - 2.0)).to_event(1)
        pres = LogitRelaxedBernoulli(self.pres_head(pooled).squeeze(-1),
                                     self.settings["pres_temperature"])
        return pres, where

    def propagation_prior(self, state: State):
        """p(z_dyna | where, what, h): the dynamics latent's prior (also what the guide samples
        at the propagation iterations that see no frame)."""
        inp = torch.cat([state.where, state.what, state.h], -1)
        loc, raw = self.dyna_prior(inp).chunk(2, -1)
        return dist.Normal(loc, _scale(raw)).to_event(1)

    def propagate(self, state: State, z_dyna: torch.Tensor):
        """LSTM step and the gated residual priors of where and what given z_dyna."""
        n, k = state.where.shape[:2]
        inp = torch.cat([state.where, state.what, z_dyna], -1).reshape(n * k, -1)
        h, c = self.lstm(inp, (state.h.reshape(n * k, -1), state.c.reshape(n * k, -1)))
        h, c = h.reshape(n, k, -1), c.reshape(n, k, -1)
        hz = torch.cat([h, z_dyna], -1)
        dw, gw, sw = self.where_update(hz).chunk(3, -1)
        da, ga, sa = self.what_update(hz).chunk(3, -1)
        where_loc = state.where + torch.sigmoid(gw) * dw
        what_loc = state.what + torch.sigmoid(ga) * da
        return h, c, (where_loc, _scale(sw)), (what_loc, _scale(sa))

    # ------------------------------------------------------------------ programs
    def iterate(self, k: int) -> List[Optional[int]]:
        """The iterations of a propagation: ``[None]`` for k = 1 (sites ``z_dyna_{t}``), else
        1..k (sites ``z_dyna_{t}_{i}``)."""
        return [None] if k == 1 else list(range(1, k + 1))

    @staticmethod
    def site(symbol: str, t: int, i: Optional[int] = None) -> str:
        return f"{symbol}_{t}" if i is None else f"{symbol}_{t}_{i}"

    @property
    def param_store_name(self) -> str:
        return f"gswm_{id(self):x}"

    def _latent(self, name: str, fn):
        with poutine.scale(scale=self.kl_weight):
            return pyro.sample(name, fn)

    def model(self, frames: torch.Tensor, iterations: Optional[int] = None):
        """p(x, z): discovery prior at t = 0, ``k`` prior propagation steps between two frames
        (``iterations``, default ``config.iterations``), every frame observed."""
        frames = self.check_frames(frames)
        k = self._check_iterations(iterations)
        pyro.module(self.param_store_name, self)
        n, t_len = frames.shape[:2]
        videos, objects = self.plates(n)
        with videos, objects:
            pres_p, where_p, what_p = self.discovery_prior(n)
            presence = torch.sigmoid(self._latent("z_pres_0", pres_p))
            state = State(self._latent("z_where_0", where_p), self._latent("z_what_0", what_p),
                          *self.initial_lstm(n))
            wheres, whats = [state.where], [state.what]
            for t in pyro.markov(range(1, t_len)):
                for i in self.iterate(k):
                    z_dyna = self._latent(self.site("z_dyna", t, i),
                                          self.propagation_prior(state))
                    h, c, (wl, ws), (al, as_) = self.propagate(state, z_dyna)
                    where = self._latent(self.site("z_where", t, i),
                                         dist.Normal(wl, ws).to_event(1))
                    what = self._latent(self.site("z_what", t, i),
                                        dist.Normal(al, as_).to_event(1))
                    state = State(where, what, h, c)
                wheres.append(state.where)
                whats.append(state.what)
        recon, _ = self.render(torch.stack(wheres, 1), torch.stack(whats, 1),
                               presence.unsqueeze(1).expand(n, t_len, -1))
        with videos:
            pyro.sample("x", dist.Normal(recon.unsqueeze(1), self.config.sigma_x).to_event(4),
                        obs=frames.unsqueeze(1))

    def guide(self, frames: torch.Tensor, iterations: Optional[int] = None):
        """q(z | x), amortised: discovery on frame 0, then per frame ``k`` propagation steps of
        which the first k - 1 follow the prior and the last one sees the frame."""
        self._guide(self.check_frames(frames), self._check_iterations(iterations))

    def _guide(self, frames: torch.Tensor, k: int) -> Dict[str, torch.Tensor]:
        pyro.module(self.param_store_name, self)
        n, t_len = frames.shape[:2]
        videos, objects = self.plates(n)
        wheres, whats, iteration_where = [], [], []
        with videos, objects:
            pres_q, where_q = self.discovery_posterior(frames[:, 0])
            presence = torch.sigmoid(self._latent("z_pres_0", pres_q))
            where = self._latent("z_where_0", where_q)
            loc, scale = self.what_posterior(self.crop(frames[:, 0], self.decode_where(where)))
            what = self._latent("z_what_0", dist.Normal(loc, scale).to_event(1))
            state = State(where, what, *self.initial_lstm(n))
            wheres.append(state.where)
            whats.append(state.what)
            for t in pyro.markov(range(1, t_len)):
                per_iteration = []
                for i in self.iterate(k):
                    last = i is None or i == k
                    if last:      # the proposal glimpse of frame t around the current where
                        proposal = self.encode_glimpses(self.proposal_encoder, self.crop(
                            frames[:, t], self.decode_where(state.where),
                            self.settings["proposal_ratio"]))
                        loc, raw = self.dyna_posterior(torch.cat(
                            [state.where, state.what, state.h, proposal], -1)).chunk(2, -1)
                        dyna_fn = dist.Normal(loc, _scale(raw)).to_event(1)
                    else:
                        dyna_fn = self.propagation_prior(state)
                    z_dyna = self._latent(self.site("z_dyna", t, i), dyna_fn)
                    h, c, (wl, ws), (al, as_) = self.propagate(state, z_dyna)
                    if last:
                        dw, sw = self.where_correction(
                            torch.cat([wl, h, proposal], -1)).chunk(2, -1)
                        wl, ws = wl + dw, _scale(sw)
                    where = self._latent(self.site("z_where", t, i),
                                         dist.Normal(wl, ws).to_event(1))
                    if last:
                        enc = self.encode_glimpses(self.glimpse_encoder, self.crop(
                            frames[:, t], self.decode_where(where)))
                        da, sa = self.what_correction(torch.cat([al, enc], -1)).chunk(2, -1)
                        al, as_ = al + da, _scale(sa)
                    what = self._latent(self.site("z_what", t, i),
                                        dist.Normal(al, as_).to_event(1))
                    state = State(where, what, h, c)
                    per_iteration.append(where)
                wheres.append(state.where)
                whats.append(state.what)
                iteration_where.append(torch.stack(per_iteration, 1))          # (N, k, K, 4)
        out = {"where": torch.stack(wheres, 1), "what": torch.stack(whats, 1),
               "presence": presence}
        if iteration_where:
            out["iteration_where"] = torch.stack(iteration_where, 1)          # (N, T-1, k, K, 4)
        return out

    def _check_iterations(self, iterations) -> int:
        k = self.config.iterations if iterations is None else iterations
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"iterations must be a positive int, got {k!r}")
        return k

    # ------------------------------------------------------------------ training protocol
    def kl_weight_at(self, step: int) -> float:
        """The ``poutine.scale`` of every latent site at training step ``step``: linear from
        ``extra["kl_weight_start"]`` to 1 over ``config.z_kl_anneal_steps`` (as the KL
        annealing of Pyro's DMM example)."""
        start, steps = float(self.settings["kl_weight_start"]), self.config.z_kl_anneal_steps
        frac = 1.0 if steps == 0 else min(1.0, step / steps)
        return start + frac * (1.0 - start)

    def programs(self, step: int):
        """The (model, guide) pair of global step ``step``.  During ``config.pretrain_steps``
        the trainer passes single frames (N, 1, 3, H, W): the same programs then train
        discovery and rendering alone."""
        self.kl_weight = self.kl_weight_at(max(0, step - self.config.pretrain_steps))
        return self.model, self.guide

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, frames: torch.Tensor, iterations: int = 1) -> Dict[str, torch.Tensor]:
        """The guide's central run (every Gaussian at its mean, presence at sigmoid of its
        logit-space mean), rendered.

        ``iterations`` k: **multi-step G-SWM** (the VIM paper's fair comparison, Sec. 5.2):
        between two consecutive frames the same monolithic propagation is applied k times; the
        first k - 1 applications follow the prior (no observation) and only the k-th sees the
        next frame (its posterior).  k = 1 is plain G-SWM.

        Returns ``positions`` (N, T, K, 2) in pixels (x = column, y = row), ``scales`` (N, T,
        K, 2) glimpse half-extents in pixels, ``presence`` (N, T, K) in [0, 1], ``recon``
        (N, T, 3, H, W), ``masks`` (N, T, K, H, W) (visible weight of each object), ``where``
        (N, T, K, 4) and ``what`` (N, T, K, D) (the latents), and for T > 1
        ``iteration_positions`` (N, T-1, k, K, 2) in pixels (each iteration's position).
        """
        frames = self.check_frames(frames)
        k = self._check_iterations(iterations)
        weight, self.kl_weight = self.kl_weight, 1.0
        try:
            with UseMeans():
                out = self._guide(frames, k)
        finally:
            self.kl_weight = weight
        n, t_len = frames.shape[:2]
        presence = out["presence"].unsqueeze(1).expand(n, t_len, -1)
        recon, masks = self.render(out["where"], out["what"], presence)
        size = self.config.image_size
        where = self.decode_where(out["where"])
        result = {"positions": coords_to_pixels(where.pos, size),
                  "scales": where.scale * (size - 1) / 2.0,
                  "presence": presence, "recon": recon, "masks": masks,
                  "where": out["where"], "what": out["what"]}
        if "iteration_where" in out:
            result["iteration_positions"] = coords_to_pixels(out["iteration_where"][..., :2], size)
        return result

    @torch.no_grad()
    def evaluation_metrics(self, batch, iterations: int = 1) -> Dict[str, Any]:
        """Held-out metrics on a :class:`~pyro_vim.data.VideoBatch`: ``recon_mse`` (squared
        error per frame, summed over pixels and channels, as pyro-vim's other reports),
        ``recon_mse_per_pixel``, ``med`` and ``med_per_frame`` (G-SWM's MED in pixels,
        :func:`pyro_vim.baselines.med.med`, on the z_where positions with the presences) and
        ``position_error`` (the same matching on the visible masks' centroids, as VIM's
        tracking error)."""
        from .. import metrics
        device = next(self.parameters()).device
        frames = torch.from_numpy(batch.frames).to(device)
        out = self.infer(frames, iterations=iterations)
        se = ((out["recon"].double().cpu().numpy() - batch.frames) ** 2).sum(axis=(2, 3, 4))
        scores = med(out["positions"], batch.positions, out["presence"])
        centroids = metrics.mask_centroids(out["masks"].cpu().numpy())
        positions = out["positions"].cpu().numpy()
        centroids = np.where(np.isfinite(centroids), centroids, positions)   # empty masks
        tracking = med(centroids, batch.positions, out["presence"])
        return {"recon_mse": float(se.mean()),
                "recon_mse_per_pixel": float(se.mean() / np.prod(batch.frames.shape[2:])),
                "med": scores["med"], "med_per_frame": scores["per_frame"],
                "position_error": tracking["med"],
                "presence_mean": float(out["presence"][:, 0].mean())}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, **extra) -> None:
        """Write an atomic checkpoint (config, state and ``extra``)."""
        from ..checkpoint import save_checkpoint
        save_checkpoint(path, model=self, **extra)

    @classmethod
    def load(cls, path: str, map_location="cpu") -> "GSWM":
        from ..checkpoint import load_checkpoint, load_model_state
        ckpt = load_checkpoint(path, map_location=map_location)
        model = cls(VIMConfig.from_saved(ckpt["config"]))
        load_model_state(model, ckpt)
        return model

    @classmethod
    def from_config(cls, config: VIMConfig) -> "GSWM":
        return cls(config)

    def __repr__(self):
        c = self.config
        return f"GSWM(K={c.num_slots}, image_size={c.image_size}, slot_dim={c.slot_dim})"
