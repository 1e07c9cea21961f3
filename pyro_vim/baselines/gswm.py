"""A compact G-SWM baseline (Lin, Wu, Peri, Fu, Jiang, Ahn 2020, "Improving Generative
Imagination in Object-Centric World Models", ICML) as a Pyro model and amortised guide, for the
comparison of the VIM paper's Sec. 5.2 / Fig. 4.

G-SWM describes every object k by its presence, where (position and size) and what (appearance)
latents; frames are rendered by glimpse decoders placed with a spatial transformer and composited
by depth; one monolithic propagation (per-object LSTMs with shared weights, a hierarchical
dynamics latent ``z_dyna`` and a relational term over the other objects) moves the objects from
frame to frame, and a discovery step at every frame adds the objects that propagation does not
explain.  This compact version keeps that structure at the sizes of VIM's cpu preset (32x32
images, K = 4 object slots, small networks).

What follows the official implementation (github.com/zhixuan-lin/G-SWM, commit 7f600a1; paths
below are in that repository) and what does not, by setting of ``config.extra``
(:data:`DEFAULTS`):

* ``discovery_every_step`` (default True) and ``discovery_dropout`` (default 0.5):
  ``src/model/gswm/fg.py::FgModule.track`` runs discovery on every frame, conditioned on the
  propagated objects, and during training skips it on a frame t > 0 with probability
  ``ARCH.DISCOVERY_DROPOUT`` = 0.5 (``src/model/gswm/arch.py``; evaluation runs it on every
  frame).  Here the training programs (:meth:`GSWM.programs`) draw that choice per frame
  (:class:`DiscoveryPlan`); ``model``/``guide``/``infer`` called directly discover on every
  frame.  Discovery is conditioned on the propagated objects as ``compute_prop_map`` does, here
  by explaining them away: the objectness map is the residual of the frame from the rendering of
  the propagated objects, and each proposal's presence sees the residual and the propagated
  objects' coverage under its attention window (``discovery_context``).  Off: discovery on frame
  0 only (the model before these settings).
* ``propagation_presence`` (default True): a presence per propagated object and step,
  ``pres_t = pres_{t-1} * z_pres_t`` (``FgModule.propagate``: ``z_pres = z_pres_prev *
  z_pres``), so an object that left the view or was lost by its proposal glimpse is switched off
  and its slot freed.  The official code samples z_pres_t from ``z_dyna`` and charges it with an
  auxiliary KL towards a presence of 1e-10 (``AUX_PRES_KL``) while its generation keeps every
  object (presence 1); here z_pres_t is a binary-concrete latent with a learned prior p(z_pres_t
  | h, z_dyna) (initialised at survival 0.99) and a posterior that also sees the glimpse at the
  object's new where, so the KL is that of the ELBO.  Off: presence fixed at discovery.
* ``rejection`` (default True) and ``rejection_threshold`` (default 0.8): ``FgModule.rejection``
  sets the presence of a discovered object to 0 when its box overlaps a present (presence > 0.5)
  propagated object's box with IoU > ``ARCH.REJECTION_THRESHOLD`` = 0.8; the same here, on the
  glimpse boxes (centre +- half-extent).
* After discovery the propagated and discovered objects are merged as ``FgModule.combine`` /
  ``select`` do (the K most present of the 2K are kept), with the surviving propagated objects
  kept in their slots and the discovered ones taking the freed slots (the official code keeps
  object ids for the same purpose).
* ``interaction`` (default True): G-SWM's relational propagation (``FgModule.compute_prop_cond``):
  for object i, ``enc_self(f_i) + sum_j w_ij rel(f_i, f_j)`` with f = (where, what, presence,
  LSTM h), the other object's position replaced by its offset from object i, and weights
  ``w_ij = softmax_j(weight(f_i, f_j)) * presence_j`` with w_ii = 0, renormalised (so absent
  objects do not interact); the result is an input of the object's LSTM step.  The official
  code has separate prior and posterior RNNs and relational networks; here one LSTM serves both.
* ``background`` (default ``"colour"``): the background is constant over frames and videos, never
  re-predicted per step: one learned colour (``"colour"``), a learned static image
  (``"image"``) or black (``"zero"``, exactly the official ball configs', ``BG_ON: False`` in
  ``src/configs/balls_*.yaml`` and ``src/model/gswm/gswm.py::GSWM.track``).  G-SWM's background
  module for scenes with moving backgrounds (``bg.py``) is not reproduced.

Still different from the paper: K fixed slots and K discovery proposals a frame (not a G x G
grid with ``ARCH.MAX`` objects), proposals by explaining-away attention rather than grid cells,
no z_depth latent (depth comes from z_what), no attention-on-environment (AOE, the background
glimpse of ``bg_attention``), a Normal likelihood with pyro-vim's ``sigma_x``, the presence prior
0.5 at frame 0 (``pres_prior``) and 0.01 for later discoveries (``discovery_pres_prior``; the
official uses 1e-10 for every discovery), and the training schedule (``GSWM_SETTINGS`` of
:mod:`pyro_vim.experiments`: a wall-clock budget at lr 1e-3; the official ball configs train
160k steps at lr 1e-4 with gradient clipping at 1.0).

A config of this family carries every setting: building the config fills the missing keys of
``extra`` with :data:`DEFAULTS` (:meth:`GSWM.complete_extra`).  A saved config whose ``extra``
lacks ``discovery_every_step`` was written before these settings existed (2026-12-07 and
earlier): :meth:`GSWM.saved_config` gives it :data:`BEFORE_FIELD` (every new part off, the
learned background colour), so its checkpoint rebuilds and infers exactly what it did
(``tests/fixtures/checkpoints/gswm-468b563``).

Sites, under the plates ``videos`` (dim -2) and ``objects`` (dim -1, K = ``num_slots``):

* ``z_pres_0``  :class:`LogitRelaxedBernoulli` (batch (N, K)): the binary-concrete presence in
  logit space; presence = sigmoid(z_pres_0).  The same class in model and guide, so its
  KL is exact in logit space (Maddison et al. 2017's recommended parameterisation).
* ``z_where_0`` Normal (event 4): (x, y) position in normalised image coordinates
  (:mod:`pyro_vim.nn.encoder`'s convention, x = column) and the two scale logits of the glimpse
  (half-extent = ``scale_min + (scale_max - scale_min) * sigmoid(logit)``, normalised units).
* ``z_what_0``  Normal (event ``slot_dim``): appearance.
* ``z_dyna_{t}``, ``z_where_{t}``, ``z_what_{t}`` and, with ``propagation_presence``,
  ``z_pres_{t}`` (t = 1..T-1): the propagation into frame t: the dynamics latent (event
  ``extra["z_dyna_dim"]``), the gated residual updates of where and what and the survival
  (presence_t = presence_{t-1} * sigmoid(z_pres_t)).  With k > 1 propagation iterations between
  two frames (multi-step G-SWM, see :meth:`GSWM.infer`) the names are ``z_dyna_{t}_{i}`` etc.,
  i = 1..k.
* ``z_pres_disc_{t}``, ``z_where_disc_{t}``, ``z_what_disc_{t}`` (t = 1..T-1, with
  ``discovery_every_step``, on the frames that discover): the K proposals of frame t, with the
  discovery prior (presence prior ``discovery_pres_prior``), merged into the slots after
  rejection.
* ``x``         Normal (event (T, 3, H, W), batch (N, 1)): every frame, observed.

Propagation of object k into frame t (shared weights over objects; state: where, what, the
LSTM's (h, c), presence):

* prior   p(z_dyna | where, what, h) = N(MLP([where, what, h]));
  posterior q(z_dyna | where, what, h, e) with e the encoding of a proposal glimpse of frame t
  around the object's previous position (``extra["proposal_ratio"]`` times its size);
* (h, c) <- LSTMCell([where, what, z_dyna, interaction], (h, c));
* where_t ~ N(where + sigmoid(g_w) * d_w, s_w) and what_t ~ N(what + sigmoid(g_a) * d_a, s_a),
  (d, g, s) = MLP([h, z_dyna]) (gated residual updates); the posteriors add a correction from
  the proposal glimpse (where) and from the glimpse at the sampled where_t (what, presence).

Discovery (:meth:`GSWM.proposals`): an objectness map (a learned score of the per-pixel
features plus ``residual_gain`` times the squared residual of the frame from the reference: the
learned background at frame 0, the rendering of the propagated objects later) is explained away
one proposal at a time (local soft-argmax around the maximum, then suppression of its
neighbourhood); each proposal's position and pooled feature feed the where and presence heads;
what comes from the glimpse encoder on the crop at the sampled where.

Rendering: each object's glimpse decoder gives RGB, an alpha map and a depth (from z_what); the
glimpses are placed by the inverse spatial transformer; the visible weight of object k at a
pixel is m_k = a_k * softmax_k(d_k + log a_k) with a_k = presence_k * alpha_k, and the frame is
sum_k m_k rgb_k + (1 - sum_k m_k) * background.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Dict, List, NamedTuple, Optional

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

__all__ = ["GSWM", "LogitRelaxedBernoulli", "DEFAULTS", "BEFORE_FIELD", "BACKGROUNDS",
           "DiscoveryPlan", "Interaction", "gswm_settings"]

#: The backgrounds of ``extra["background"]`` (module docstring): all constant over time.
BACKGROUNDS = ("colour", "image", "zero")

#: G-SWM settings read from ``config.extra`` (with these defaults).
DEFAULTS: Dict[str, Any] = {
    "glimpse_size": 8,          # side of the glimpse (pixels of the crop / decoded patch)
    "z_dyna_dim": 8,            # size of the dynamics latent z_dyna
    "scale_min": 0.1,           # glimpse half-extent range, normalised units (1 = half image)
    "scale_max": 0.4,
    "proposal_ratio": 2.0,      # proposal glimpse of the propagation posterior, x object size
    "discovery_radius": 0.2,    # std of a discovery proposal's attention window (normalised)
    "residual_gain": 10.0,      # weight of the background residual in the objectness map
    "pres_prior": 0.5,          # prior presence probability at discovery on frame 0
    "pres_temperature": 0.5,    # binary-concrete temperature of z_pres
    "where_prior_scale": 1.0,   # std of p(z_where_0) (position and scale logits)
    "kl_weight_start": 1.0,     # poutine.scale of the latent sites, annealed linearly to 1
                                # over config.z_kl_anneal_steps (1.0: no annealing)
    # the paper's parts (module docstring)
    "discovery_every_step": True,   # discovery on every frame (False: on frame 0 only)
    "discovery_dropout": 0.5,       # training: probability that a frame t > 0 skips discovery
    "discovery_pres_prior": 0.01,   # prior presence probability of a discovery on frame t > 0
    "propagation_presence": True,   # per-step presence (survival) of propagated objects
    "rejection": True,              # reject discoveries that duplicate a propagated object
    "rejection_threshold": 0.8,     # ... when their boxes' IoU exceeds this
    "interaction": True,            # relational term (attention over the other objects)
    "background": "colour",         # "colour" | "image" | "zero" (constant over time)
}

#: The values that reproduce G-SWM models saved before these settings existed, for the keys
#: their saved ``extra`` lacks (see :meth:`GSWM.saved_config`).
BEFORE_FIELD: Dict[str, Any] = {
    "discovery_every_step": False,
    "propagation_presence": False,
    "rejection": False,
    "interaction": False,
    "background": "colour",
}

_BOOLS = ("discovery_every_step", "propagation_presence", "rejection", "interaction")


def _check_number(out, name, low, high, low_open=True, high_open=True):
    v = out[name]
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"config.extra[{name!r}] must be a number in {lo}{low}, {high}{hi}, "
                         f"got {v!r}")


def gswm_settings(config: VIMConfig) -> Dict[str, Any]:
    """``DEFAULTS`` updated with ``config.extra``'s G-SWM keys, checked (ValueError)."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in config.extra.items() if k in DEFAULTS})
    _check_extra(out)
    return out


def _check_extra(out: Dict[str, Any]) -> None:
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
    for name in _BOOLS:
        if not isinstance(out[name], bool):
            raise ValueError(f"config.extra[{name!r}] must be true or false, got {out[name]!r}")
    _check_number(out, "discovery_dropout", 0, 1, low_open=False)
    _check_number(out, "discovery_pres_prior", 0, 1)
    _check_number(out, "rejection_threshold", 0, 1, high_open=False)
    if out["background"] not in BACKGROUNDS:
        raise ValueError(f"config.extra['background'] must be one of {list(BACKGROUNDS)}, got "
                         f"{out['background']!r}")


class DiscoveryPlan:
    """Which frames t > 0 run discovery in one training step (G-SWM's discovery dropout): each
    frame independently with probability ``1 - dropout``, drawn (torch's generator) when first
    asked and then fixed, so that the guide and the model of one ELBO evaluation agree."""

    def __init__(self, dropout: float):
        self.dropout = float(dropout)
        self.drawn: Dict[int, bool] = {}

    def __call__(self, t: int) -> bool:
        if t not in self.drawn:
            self.drawn[t] = bool(torch.rand(()) >= self.dropout)
        return self.drawn[t]


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
    pres: torch.Tensor      # (N, K) presence in [0, 1]


class Step(NamedTuple):
    """One propagation step's LSTM state and the priors of where, what and presence."""
    h: torch.Tensor
    c: torch.Tensor
    where: tuple            # (loc, scale)
    what: tuple             # (loc, scale)
    pres_logit: Optional[torch.Tensor]      # (N, K) survival logit, None without presence


def _scale(raw: torch.Tensor) -> torch.Tensor:
    return F.softplus(raw) + 1e-3


def _small_last_layer(mlp: nn.Sequential, gain: float = 0.01) -> None:
    with torch.no_grad():
        mlp[-1].weight.mul_(gain)
        mlp[-1].bias.zero_()


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class Interaction(nn.Module):
    """G-SWM's relational propagation term (``FgModule.compute_prop_cond`` of the official code,
    module docstring): ``enc_self(f_i) + sum_{j != i} w_ij rel([f_i, f_j'])`` where f = (where,
    what, presence, h), f_j' is f_j with its position replaced by its offset from object i, and
    ``w_ij = softmax_j(weight([f_i, f_j'])) * presence_j`` with w_ii = 0, renormalised by
    ``sum_j w_ij + 1e-4`` (no partner present: no relational input)."""

    def __init__(self, state_dim: int, hidden: int):
        super().__init__()
        self.self_encoder = MLP(state_dim, hidden, hidden)
        self.relation = MLP(2 * state_dim, hidden, hidden)
        self.weight = MLP(2 * state_dim, hidden, 1)

    def forward(self, where: torch.Tensor, what: torch.Tensor, h: torch.Tensor,
                pres: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([where, what, pres.unsqueeze(-1), h], -1)          # (N, K, F)
        n, k, f = feat.shape
        offset = where[:, None, :, :2] - where[:, :, None, :2]              # (N, i, j, 2)
        other = torch.cat([offset, feat[:, None, :, 2:].expand(n, k, k, f - 2)], -1)
        pair = torch.cat([feat[:, :, None].expand(n, k, k, f), other], -1)  # (N, i, j, 2F)
        w = self.weight(pair).squeeze(-1).softmax(-1) * pres[:, None, :]
        w = w * (1 - torch.eye(k, dtype=w.dtype, device=w.device))
        w = w / (w.sum(-1, keepdim=True) + 1e-4)
        return self.self_encoder(feat) + (w.unsqueeze(-1) * self.relation(pair)).sum(-2)


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
        # constant background (logits of a colour or of a static image), initialised dark
        if s["background"] == "colour":
            self.background = nn.Parameter(torch.full((3,), -3.0))
        elif s["background"] == "image":
            self.background = nn.Parameter(torch.full((3, c.image_size, c.image_size), -3.0))
        else:
            self.background = None
        # propagation (one monolithic module, shared over objects)
        self.proposal_encoder = nn.Sequential(
            nn.Conv2d(3, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, ch, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(ch * ((g + 1) // 2) ** 2, hid), nn.ReLU())
        self.dyna_prior = MLP(4 + d + hid, hid, 2 * dd)
        self.dyna_posterior = MLP(4 + d + hid + hid, hid, 2 * dd)
        # the relational term, an input of the LSTM (created only when on: the modules and the
        # LSTM's input size of the models saved before it are unchanged)
        self.interaction = Interaction(4 + d + 1 + hid, hid) if s["interaction"] else None
        self.lstm = nn.LSTMCell(4 + d + dd + (hid if s["interaction"] else 0), hid)
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
        # per-step presence: the survival prior p(z_pres_t | h, z_dyna) (at first 0.99) and
        # the posterior's correction from the glimpse at the new where
        if s["propagation_presence"]:
            self.pres_update = MLP(hid + dd, hid, 1)
            self.pres_correction = MLP(hid + hid, hid, 1)
            _small_last_layer(self.pres_update)
            _small_last_layer(self.pres_correction)
            with torch.no_grad():
                self.pres_update[-1].bias.fill_(_logit(0.99))
        else:
            self.pres_update = self.pres_correction = None
        # discovery after frame 0: a proposal's presence also sees the residual and the
        # propagated objects' coverage under its window (G-SWM's propagation map)
        if s["discovery_every_step"]:
            self.discovery_context = nn.Linear(2, 1)
            with torch.no_grad():
                self.discovery_context.weight.zero_()
                self.discovery_context.bias.zero_()
        else:
            self.discovery_context = None
        self.register_buffer("grid", coordinate_grid(c.image_size, c.image_size))
        self.kl_weight = 1.0

    # ------------------------------------------------------------------ saved settings
    @classmethod
    def complete_extra(cls, extra: Dict[str, Any], config: VIMConfig) -> Dict[str, Any]:
        """``extra`` with every G-SWM setting written out (missing keys: :data:`DEFAULTS`),
        checked; ``VIMConfig.validate`` calls it for configs of this family, so that a saved
        config says what was built."""
        out = dict(extra)
        for key, value in DEFAULTS.items():
            out.setdefault(key, value)
        _check_extra(out)
        return out

    @classmethod
    def saved_config(cls, config: VIMConfig, saved_extra: Dict[str, Any]) -> VIMConfig:
        """The config a checkpoint or run folder saved (already built, its ``extra`` completed
        with today's defaults) with ``saved_extra`` the ``extra`` dict it stored.  Without
        ``discovery_every_step`` it was saved before the paper's discovery, presence,
        rejection and interaction settings existed: its missing keys get :data:`BEFORE_FIELD`
        (all of them off), so the model it rebuilds is the one that was trained.
        ``VIMConfig.from_saved`` calls it."""
        if "discovery_every_step" in saved_extra:
            return config
        extra = dict(saved_extra)
        for key, value in BEFORE_FIELD.items():
            extra.setdefault(key, value)
        return config.replace(extra=extra)

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

    def background_rgb(self) -> torch.Tensor:
        """The background, the same for every frame and video: (3, 1, 1) (``"colour"``,
        ``"zero"``) or (3, H, W) (``"image"``), in [0, 1]."""
        if self.background is None:
            return self.grid.new_zeros(3, 1, 1)
        if self.background.dim() == 1:
            return torch.sigmoid(self.background).reshape(3, 1, 1)
        return torch.sigmoid(self.background)

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
        background = self.background_rgb()
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

    def discovery_prior(self, n: int, first: bool = True):
        """p(z_pres), p(z_where), p(z_what) of the K discoveries of a frame: presence prior
        ``pres_prior`` on frame 0 (``first``), ``discovery_pres_prior`` later."""
        s, c = self.settings, self.config
        k = c.num_slots
        logit = math.log(s["pres_prior"] / (1 - s["pres_prior"])) if first \
            else _logit(s["discovery_pres_prior"])
        pres = LogitRelaxedBernoulli(self.grid.new_full((n, k), logit), s["pres_temperature"])
        where = dist.Normal(self.grid.new_zeros(n, k, 4),
                            self.grid.new_full((n, k, 4), s["where_prior_scale"])).to_event(1)
        what = dist.Normal(self.grid.new_zeros(n, k, c.slot_dim),
                           self.grid.new_ones(n, k, c.slot_dim)).to_event(1)
        return pres, where, what

    def proposals(self, frame: torch.Tensor, reference: Optional[torch.Tensor] = None):
        """K proposals over the encoder map, found in turn: (positions (N, K, 2), pooled
        features (N, K, C), attention windows (N, K, HW), residual (N, HW)).

        The objectness map is a learned per-pixel score of the encoder features plus
        ``residual_gain`` times the squared residual of the frame from ``reference`` (N, 3, H,
        W): by default the learned background; after frame 0, the rendering of the propagated
        objects, so that discovery looks for what propagation does not explain.  Proposal k is
        the attention-weighted centroid of the objectness around the current maximum (a
        Gaussian window of std ``discovery_radius``); its neighbourhood (a Gaussian of std
        ``discovery_radius / 2`` scaled by 1000) is then suppressed, so the next proposal finds
        another object (the K proposals explain the frame away one after another, as
        non-maximum suppression)."""
        feats = self.encoder(frame)                                     # (N, HW, C)
        s = self.settings
        if reference is None:
            reference = self.background_rgb().unsqueeze(0)
        residual = (frame - reference).pow(2).sum(1).flatten(1)         # (N, HW)
        score = self.objectness(feats).squeeze(-1) + s["residual_gain"] * residual
        width2 = s["discovery_radius"] ** 2
        positions, pooled, windows = [], [], []
        for _ in range(self.config.num_slots):
            centre = self.grid[score.detach().argmax(-1)]               # (N, 2)
            d2 = (self.grid.unsqueeze(0) - centre.unsqueeze(1)).pow(2).sum(-1)
            attn = (score - 0.5 * d2 / width2).softmax(-1)              # (N, HW)
            pos = attn @ self.grid
            positions.append(pos)
            pooled.append((attn.unsqueeze(1) @ feats).squeeze(1))
            windows.append(attn)
            near = (self.grid.unsqueeze(0) - pos.unsqueeze(1)).pow(2).sum(-1)
            # suppression: about 2.6 x discovery_radius / 2 wide (a ball's radius by default)
            score = score - 1e3 * torch.exp(-2.0 * near / width2)
        return torch.stack(positions, 1), torch.stack(pooled, 1), torch.stack(windows, 1), \
            residual

    def discovery_posterior(self, frame: torch.Tensor, reference: Optional[torch.Tensor] = None,
                            covered: Optional[torch.Tensor] = None):
        """q(z_pres), q(z_where) of the K proposals (:meth:`proposals`) of ``frame``;
        ``reference`` and ``covered`` (N, H, W): the rendering of the propagated objects and
        the share of each pixel they cover (None: the background, nothing covered)."""
        pos, pooled, attn, residual = self.proposals(frame, reference)
        out = self.where_head(pooled)
        loc = torch.cat([pos + out[..., :2], out[..., 2:4]], -1)
        where = dist.Normal(loc, _scale(out[..., 4:] - 2.0)).to_event(1)
        logit = self.pres_head(pooled).squeeze(-1)
        if self.discovery_context is not None:
            cover = residual.new_zeros(residual.shape) if covered is None else covered.flatten(1)
            context = torch.stack([torch.einsum("nkp,np->nk", attn, residual),
                                   torch.einsum("nkp,np->nk", attn, cover)], -1)
            logit = logit + self.discovery_context(context).squeeze(-1)
        pres = LogitRelaxedBernoulli(logit, self.settings["pres_temperature"])
        return pres, where

    def propagation_prior(self, state: State):
        """p(z_dyna | where, what, h): the dynamics latent's prior (also what the guide samples
        at the propagation iterations that see no frame)."""
        inp = torch.cat([state.where, state.what, state.h], -1)
        loc, raw = self.dyna_prior(inp).chunk(2, -1)
        return dist.Normal(loc, _scale(raw)).to_event(1)

    def propagate(self, state: State, z_dyna: torch.Tensor) -> Step:
        """LSTM step (its input: where, what, z_dyna and, with ``interaction``, the relational
        term over the other objects) and the priors of where, what (gated residual updates)
        and, with ``propagation_presence``, the survival logit, given z_dyna."""
        n, k = state.where.shape[:2]
        parts = [state.where, state.what, z_dyna]
        if self.interaction is not None:
            parts.append(self.interaction(state.where, state.what, state.h, state.pres))
        inp = torch.cat(parts, -1).reshape(n * k, -1)
        h, c = self.lstm(inp, (state.h.reshape(n * k, -1), state.c.reshape(n * k, -1)))
        h, c = h.reshape(n, k, -1), c.reshape(n, k, -1)
        hz = torch.cat([h, z_dyna], -1)
        dw, gw, sw = self.where_update(hz).chunk(3, -1)
        da, ga, sa = self.what_update(hz).chunk(3, -1)
        where_loc = state.where + torch.sigmoid(gw) * dw
        what_loc = state.what + torch.sigmoid(ga) * da
        pres_logit = None if self.pres_update is None else self.pres_update(hz).squeeze(-1)
        return Step(h, c, (where_loc, _scale(sw)), (what_loc, _scale(sa)), pres_logit)

    def rejected(self, where: torch.Tensor, state: State) -> torch.Tensor:
        """(N, K) bool: the discoveries (z_where ``where``, (N, K, 4)) whose glimpse box overlaps
        the box of a present (presence > 0.5) propagated object of ``state`` with IoU above
        ``rejection_threshold`` (G-SWM's rejection)."""
        d, p = self.decode_where(where.detach()), self.decode_where(state.where.detach())
        lo = torch.maximum((d.pos - d.scale)[:, :, None], (p.pos - p.scale)[:, None])
        hi = torch.minimum((d.pos + d.scale)[:, :, None], (p.pos + p.scale)[:, None])
        overlap = (hi - lo).clamp(min=0).prod(-1)                       # (N, Kd, Kp)
        area_d = (2 * d.scale).prod(-1)[:, :, None]
        area_p = (2 * p.scale).prod(-1)[:, None]
        iou = overlap / (area_d + area_p - overlap)
        present = state.pres.detach()[:, None] > 0.5
        return ((iou > self.settings["rejection_threshold"]) & present).any(-1)

    @staticmethod
    def combine(propagated: State, discovered: State) -> State:
        """The K most present of the 2K objects (G-SWM's ``combine``/``select``), arranged so
        that the propagated objects that stay keep their slots: the discoveries, most present
        first, each replace the least present object of the current slots when they are more
        present than it."""
        k = propagated.pres.shape[-1]
        order = discovered.pres.detach().argsort(-1, descending=True)   # (N, K)
        state = propagated
        for j in range(k):
            index = order[:, j:j + 1]                                    # (N, 1)
            cand = State(*(x.gather(1, index.unsqueeze(-1).expand(-1, 1, x.shape[-1]))
                           if x.dim() == 3 else x.gather(1, index) for x in discovered))
            slot = state.pres.detach().argmin(-1, keepdim=True)          # (N, 1)
            take = cand.pres.detach() > state.pres.detach().gather(1, slot)
            mask = F.one_hot(slot.squeeze(-1), k).bool() & take          # (N, K)
            state = State(*(torch.where(mask.unsqueeze(-1) if x.dim() == 3 else mask, y, x)
                            for x, y in zip(state, cand)))
        return state

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

    def _discovers(self, t: int, discover: Optional[Callable[[int], bool]]) -> bool:
        """Whether frame t > 0 runs discovery: never without ``discovery_every_step``, else as
        ``discover`` says (None: every frame)."""
        return self.settings["discovery_every_step"] and (discover is None or discover(t))

    def _merge_discoveries(self, state: State, pres_logit: torch.Tensor, where: torch.Tensor,
                           what: torch.Tensor) -> State:
        """Rejection, then :meth:`combine` of the propagated ``state`` with the K discoveries
        (sampled z_pres logits, z_where, z_what; fresh LSTM states)."""
        pres = torch.sigmoid(pres_logit)
        if self.settings["rejection"]:
            pres = pres * (~self.rejected(where, state)).to(pres.dtype)
        return self.combine(state, State(where, what, *self.initial_lstm(where.shape[0]), pres))

    def model(self, frames: torch.Tensor, iterations: Optional[int] = None, *,
              discover: Optional[Callable[[int], bool]] = None):
        """p(x, z): discovery prior at t = 0, ``k`` prior propagation steps between two frames
        (``iterations``, default ``config.iterations``), with ``discovery_every_step`` the
        discovery prior of the frames t > 0 that ``discover(t)`` chooses (None: all; the
        training programs' :class:`DiscoveryPlan`), every frame observed."""
        frames = self.check_frames(frames)
        k = self._check_iterations(iterations)
        pyro.module(self.param_store_name, self)
        n, t_len = frames.shape[:2]
        videos, objects = self.plates(n)
        tau = self.settings["pres_temperature"]
        with videos, objects:
            pres_p, where_p, what_p = self.discovery_prior(n)
            presence = torch.sigmoid(self._latent("z_pres_0", pres_p))
            state = State(self._latent("z_where_0", where_p), self._latent("z_what_0", what_p),
                          *self.initial_lstm(n), presence)
            wheres, whats, presences = [state.where], [state.what], [state.pres]
            for t in pyro.markov(range(1, t_len)):
                for i in self.iterate(k):
                    z_dyna = self._latent(self.site("z_dyna", t, i),
                                          self.propagation_prior(state))
                    step = self.propagate(state, z_dyna)
                    where = self._latent(self.site("z_where", t, i),
                                         dist.Normal(*step.where).to_event(1))
                    what = self._latent(self.site("z_what", t, i),
                                        dist.Normal(*step.what).to_event(1))
                    pres = state.pres
                    if step.pres_logit is not None:
                        pres = pres * torch.sigmoid(self._latent(
                            self.site("z_pres", t, i), LogitRelaxedBernoulli(step.pres_logit,
                                                                             tau)))
                    state = State(where, what, step.h, step.c, pres)
                if self._discovers(t, discover):
                    pres_p, where_p, what_p = self.discovery_prior(n, first=False)
                    state = self._merge_discoveries(
                        state, self._latent(self.site("z_pres_disc", t), pres_p),
                        self._latent(self.site("z_where_disc", t), where_p),
                        self._latent(self.site("z_what_disc", t), what_p))
                wheres.append(state.where)
                whats.append(state.what)
                presences.append(state.pres)
        recon, _ = self.render(torch.stack(wheres, 1), torch.stack(whats, 1),
                               torch.stack(presences, 1))
        with videos:
            pyro.sample("x", dist.Normal(recon.unsqueeze(1), self.config.sigma_x).to_event(4),
                        obs=frames.unsqueeze(1))

    def guide(self, frames: torch.Tensor, iterations: Optional[int] = None, *,
              discover: Optional[Callable[[int], bool]] = None):
        """q(z | x), amortised: discovery on frame 0, then per frame ``k`` propagation steps of
        which the first k - 1 follow the prior and the last one sees the frame, then (with
        ``discovery_every_step``, on the frames ``discover`` chooses) discovery conditioned on
        the propagated objects, rejection and the merge into the slots."""
        self._guide(self.check_frames(frames), self._check_iterations(iterations), discover)

    def _guide(self, frames: torch.Tensor, k: int,
               discover: Optional[Callable[[int], bool]] = None) -> Dict[str, torch.Tensor]:
        pyro.module(self.param_store_name, self)
        n, t_len = frames.shape[:2]
        videos, objects = self.plates(n)
        tau = self.settings["pres_temperature"]
        wheres, whats, presences, iteration_where = [], [], [], []
        with videos, objects:
            pres_q, where_q = self.discovery_posterior(frames[:, 0])
            presence = torch.sigmoid(self._latent("z_pres_0", pres_q))
            where = self._latent("z_where_0", where_q)
            loc, scale = self.what_posterior(self.crop(frames[:, 0], self.decode_where(where)))
            what = self._latent("z_what_0", dist.Normal(loc, scale).to_event(1))
            state = State(where, what, *self.initial_lstm(n), presence)
            wheres.append(state.where)
            whats.append(state.what)
            presences.append(state.pres)
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
                    step = self.propagate(state, z_dyna)
                    (wl, ws), (al, as_), pres_logit = step.where, step.what, step.pres_logit
                    if last:
                        dw, sw = self.where_correction(
                            torch.cat([wl, step.h, proposal], -1)).chunk(2, -1)
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
                    pres = state.pres
                    if pres_logit is not None:
                        if last:      # is the object still at its new where?
                            pres_logit = pres_logit + self.pres_correction(
                                torch.cat([step.h, enc], -1)).squeeze(-1)
                        pres = pres * torch.sigmoid(self._latent(
                            self.site("z_pres", t, i), LogitRelaxedBernoulli(pres_logit, tau)))
                    state = State(where, what, step.h, step.c, pres)
                    per_iteration.append(where)
                if self._discovers(t, discover):
                    with torch.no_grad():   # what propagation explains (rendered, no gradient)
                        reference, masks = self.render(state.where, state.what, state.pres)
                    pres_q, where_q = self.discovery_posterior(frames[:, t], reference,
                                                               masks.sum(-3))
                    pres_logit = self._latent(self.site("z_pres_disc", t), pres_q)
                    where = self._latent(self.site("z_where_disc", t), where_q)
                    loc, scale = self.what_posterior(
                        self.crop(frames[:, t], self.decode_where(where)))
                    what = self._latent(self.site("z_what_disc", t),
                                        dist.Normal(loc, scale).to_event(1))
                    state = self._merge_discoveries(state, pres_logit, where, what)
                    per_iteration[-1] = state.where      # the frame's objects after the merge
                wheres.append(state.where)
                whats.append(state.what)
                presences.append(state.pres)
                iteration_where.append(torch.stack(per_iteration, 1))          # (N, k, K, 4)
        out = {"where": torch.stack(wheres, 1), "what": torch.stack(whats, 1),
               "presence": torch.stack(presences, 1)}                          # (N, T, K)
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
        discovery and rendering alone.  With ``discovery_every_step`` and a positive
        ``discovery_dropout`` both programs share one fresh :class:`DiscoveryPlan` (G-SWM's
        discovery dropout, training only)."""
        self.kl_weight = self.kl_weight_at(max(0, step - self.config.pretrain_steps))
        dropout = self.settings["discovery_dropout"]
        if self.settings["discovery_every_step"] and dropout > 0:
            plan = DiscoveryPlan(dropout)
            return (functools.partial(self.model, discover=plan),
                    functools.partial(self.guide, discover=plan))
        return self.model, self.guide

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, frames: torch.Tensor, iterations: int = 1) -> Dict[str, torch.Tensor]:
        """The guide's central run (every Gaussian at its mean, presence at sigmoid of its
        logit-space mean), rendered; with ``discovery_every_step`` discovery runs on every
        frame (no dropout).

        ``iterations`` k: **multi-step G-SWM** (the VIM paper's fair comparison, Sec. 5.2):
        between two consecutive frames the same monolithic propagation is applied k times; the
        first k - 1 applications follow the prior (no observation) and only the k-th sees the
        next frame (its posterior).  k = 1 is plain G-SWM.

        Returns ``positions`` (N, T, K, 2) in pixels (x = column, y = row), ``scales`` (N, T,
        K, 2) glimpse half-extents in pixels, ``presence`` (N, T, K) in [0, 1] (each frame's,
        after propagation and discovery), ``recon`` (N, T, 3, H, W), ``masks`` (N, T, K, H, W)
        (visible weight of each object), ``where`` (N, T, K, 4) and ``what`` (N, T, K, D) (the
        latents), and for T > 1 ``iteration_positions`` (N, T-1, k, K, 2) in pixels (each
        iteration's position; the last one is the frame's, after discovery).
        """
        frames = self.check_frames(frames)
        k = self._check_iterations(iterations)
        weight, self.kl_weight = self.kl_weight, 1.0
        try:
            with UseMeans():
                out = self._guide(frames, k)
        finally:
            self.kl_weight = weight
        presence = out["presence"]
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
