"""SCOFF (Goyal et al., 2020) as a deterministic, teacher-forced next-frame baseline (Table 1).

K object files (``config.num_slots``) of size D (``config.slot_dim``) read the previous frame and
are updated by M schemata (``config.num_modules``), GRU cells shared by all object files.  One step
``h_{t-1} -> h_t`` reading the true frame ``x_{t-1}`` (teacher forcing):

1. **Input attention with a null row.**  Frame ``x_{t-1}`` is encoded by VIM's
   :class:`~pyro_vim.nn.Encoder` (per-pixel features, concatenated with the pixel's (x, y) so that
   the units can tell where things are: the encoder carries no absolute position).  Each object
   file's query attends, by a softmax over the rows, to a *null* row (a learned key, value zero)
   and the H*W pixel rows.  The attention weights read a value ``a_k`` per object file.
2. **Top-k activation.**  An object file's input score is the attention mass on the pixels,
   ``1 - a_null``.  The ``top_k`` object files with the highest score are active, except those
   whose score is not above ``null_threshold`` (they attend mostly to the null row): an input that
   every object file ignores (e.g. a frame with no rows, or one whose keys lose to the null key)
   activates nothing.  ``null_threshold = 0`` drops this condition: RIM's "always exactly k".
   Inactive object files keep their state *exactly* (through steps 3 and 4).
3. **Schemata.**  Each of the M GRU schemata proposes ``GRU_m(a_k, h_k)``; the object file picks
   one by key-query attention (query from ``h_k``, keys from the M proposals) with a hard
   straight-through Gumbel-softmax while training and the argmax otherwise.
4. **Communication.**  Active object files read the others (active or not) by key-query
   attention over the object files and add what they read (residual); inactive ones do not
   change.
5. **Decoding.**  Every object file is decoded by VIM's spatial broadcast decoder
   (:class:`~pyro_vim.nn.BroadcastDecoder`, the same sizes as VIM) around a position
   ``tanh(Linear(h_k))`` read from its state; the object files' RGB images are composited by the
   softmax over their mask logits (the mean of the spatial mixture, like VIM's renders).  Object
   file 0 has no local mask extent (it can draw the background), as VIM's slot 0.

The prediction of frame t is decoded from the state after reading frames ``0..t-1``; frame 0 is
predicted from the learned initial state alone (the empty history: an unconditional guess).  The
Pyro model observes all T frames under ``Normal(prediction, sigma_x)`` (squared error), the guide
is empty: Trace_ELBO is the scaled squared error of the predictions.

RIM (Goyal et al., 2019; :mod:`pyro_vim.baselines.rim`) is the same core without the choice of
schema.  Baseline settings live in ``config.extra`` (defaults in :data:`DEFAULTS`).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule
from torch import nn
from torch.nn import functional as F

from ..config import VIMConfig
from ..distributions import SpatialGaussianMixture
from ..nn import BroadcastDecoder, Encoder, coordinate_grid, coords_to_pixels
from ..registry import register_model

__all__ = ["DEFAULTS", "GRUBank", "ObjectFiles", "CoreStep", "SCOFF", "baseline_settings"]

#: ``config.extra`` keys of RIM and SCOFF and their defaults (None: derived from the config).
DEFAULTS: Dict[str, Any] = {
    "top_k": None,               # active units per step (default: num_slots - 1, at least 1)
    "null_threshold": 0.5,       # an active unit's pixel attention mass must exceed this
    "key_dim": None,             # key/query size of every attention (default: keyquery_dim)
    "input_value_dim": None,     # size of what a unit reads from the frame (default: slot_dim)
    "gumbel_temperature": 1.0,   # temperature of SCOFF's straight-through schema choice
    "rim_schemata": "per_unit",  # RIM only: "per_unit" GRUs (Goyal et al. 2019) or "single"
}


def baseline_settings(config: VIMConfig) -> Dict[str, Any]:
    """The baseline settings of ``config.extra`` with their defaults filled in and checked."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in config.extra.items() if k in DEFAULTS})
    k = config.num_slots
    if out["top_k"] is None:
        out["top_k"] = max(1, k - 1)
    if out["key_dim"] is None:
        out["key_dim"] = config.keyquery_dim
    if out["input_value_dim"] is None:
        out["input_value_dim"] = config.slot_dim
    for name in ("top_k", "key_dim", "input_value_dim"):
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"VIMConfig.extra[{name!r}] must be a positive int, got {value!r}")
    if out["top_k"] > k:
        raise ValueError(f"VIMConfig.extra['top_k'] ({out['top_k']}) must not exceed num_slots "
                         f"({k})")
    thr = out["null_threshold"]
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr < 1:
        raise ValueError(f"VIMConfig.extra['null_threshold'] must be a number in [0, 1), got "
                         f"{thr!r}")
    tau = out["gumbel_temperature"]
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < math.inf:
        raise ValueError(f"VIMConfig.extra['gumbel_temperature'] must be a positive number, got "
                         f"{tau!r}")
    if out["rim_schemata"] not in ("per_unit", "single"):
        raise ValueError(f"VIMConfig.extra['rim_schemata'] must be 'per_unit' or 'single', got "
                         f"{out['rim_schemata']!r}")
    return out


class GRUBank(nn.Module):
    """``num`` independent GRU cells (input I, hidden H) evaluated together.

    ``all(x, h)``: every cell on every unit, (N, K, I), (N, K, H) -> (N, K, num, H);
    ``per_unit(x, h)``: cell k on unit k (needs K = num) -> (N, K, H).
    """

    def __init__(self, num: int, input_dim: int, hidden: int):
        super().__init__()
        self.num, self.hidden = num, hidden
        bound = 1.0 / math.sqrt(hidden)
        self.w_ih = nn.Parameter(torch.empty(num, 3 * hidden, input_dim).uniform_(-bound, bound))
        self.w_hh = nn.Parameter(torch.empty(num, 3 * hidden, hidden).uniform_(-bound, bound))
        self.b_ih = nn.Parameter(torch.empty(num, 3 * hidden).uniform_(-bound, bound))
        self.b_hh = nn.Parameter(torch.empty(num, 3 * hidden).uniform_(-bound, bound))

    def _cell(self, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ir, iz, inn = gi.chunk(3, -1)
        hr, hz, hn = gh.chunk(3, -1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(inn + r * hn)
        return (1 - z) * n + z * h

    def all(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gi = torch.einsum("nki,gji->nkgj", x, self.w_ih) + self.b_ih
        gh = torch.einsum("nkh,gjh->nkgj", h, self.w_hh) + self.b_hh
        return self._cell(gi, gh, h.unsqueeze(-2))

    def per_unit(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if h.shape[-2] != self.num:
            raise ValueError(f"per_unit needs one GRU per unit: {self.num} GRUs, "
                             f"{h.shape[-2]} units")
        gi = torch.einsum("nki,kji->nkj", x, self.w_ih) + self.b_ih
        gh = torch.einsum("nkh,kjh->nkj", h, self.w_hh) + self.b_hh
        return self._cell(gi, gh, h)


class CoreStep(NamedTuple):
    """What one step of :class:`ObjectFiles` computed."""
    h: torch.Tensor                     # (N, K, D) the new states
    active: torch.Tensor                # (N, K) bool: the units that were updated
    attention: torch.Tensor             # (N, K, 1 + P) input attention, column 0 the null row
    selection: Optional[torch.Tensor]   # (N, K, M) one-hot schema choice (None: no choice)


class ObjectFiles(nn.Module):
    """The recurrent core shared by SCOFF and RIM (steps 1-4 of the module docstring).

    ``schemata``: "shared" (SCOFF: ``num_schemata`` GRUs, one picked per unit and step),
    "per_unit" (RIM: unit k has its own GRU k) or "single" (one GRU for every unit).
    """

    def __init__(self, num_units: int, hidden: int, input_dim: int, num_schemata: int,
                 schemata: str, top_k: int, null_threshold: float, key_dim: int,
                 value_dim: int, temperature: float = 1.0):
        super().__init__()
        if schemata not in ("shared", "per_unit", "single"):
            raise ValueError(f"schemata must be 'shared', 'per_unit' or 'single', got "
                             f"{schemata!r}")
        self.num_units, self.hidden, self.schemata = num_units, hidden, schemata
        self.top_k, self.null_threshold, self.temperature = top_k, null_threshold, temperature
        self.key_dim = key_dim
        # 1. input attention: units query the null row and the pixels
        self.in_query = nn.Linear(hidden, key_dim, bias=False)
        self.in_key = nn.Linear(input_dim, key_dim)
        self.in_value = nn.Linear(input_dim, value_dim)
        self.null_key = nn.Parameter(torch.zeros(key_dim))          # its value is zero
        # 3. schemata
        grus = {"shared": num_schemata, "per_unit": num_units, "single": 1}[schemata]
        self.grus = GRUBank(grus, value_dim, hidden)
        if schemata == "shared" and num_schemata > 1:
            self.sel_query = nn.Linear(hidden, key_dim, bias=False)
            self.sel_key = nn.Linear(hidden, key_dim, bias=False)
        # 4. communication between units
        self.comm_query = nn.Linear(hidden, key_dim, bias=False)
        self.comm_key = nn.Linear(hidden, key_dim, bias=False)
        self.comm_value = nn.Linear(hidden, hidden)
        with torch.no_grad():                 # start close to "no communication"
            self.comm_value.weight.mul_(0.1)
            self.comm_value.bias.zero_()

    @property
    def selects(self) -> bool:
        """Whether a schema is chosen per unit (SCOFF with M > 1)."""
        return hasattr(self, "sel_query")

    def input_attention(self, h: torch.Tensor, inputs: torch.Tensor):
        """h (N, K, D), inputs (N, P, I) -> read values (N, K, V) and the attention
        (N, K, 1 + P) over [null row, P input rows] (each unit's row sums to 1)."""
        q = self.in_query(h)                                              # (N, K, dk)
        keys = self.in_key(inputs)                                        # (N, P, dk)
        null = self.null_key.expand(h.shape[0], 1, -1)
        logits = torch.einsum("nkd,npd->nkp", q, torch.cat([null, keys], 1))
        attn = (logits / math.sqrt(self.key_dim)).softmax(-1)
        read = torch.einsum("nkp,npv->nkv", attn[..., 1:], self.in_value(inputs))
        return read, attn

    def activity(self, attn: torch.Tensor) -> torch.Tensor:
        """(N, K) bool: the ``top_k`` units with the most attention on the input rows, among
        those whose input mass exceeds ``null_threshold`` (0: no such condition, always
        ``top_k`` active units as in RIM)."""
        score = 1.0 - attn[..., 0]
        top = torch.zeros_like(score, dtype=torch.bool)
        top.scatter_(-1, score.topk(self.top_k, -1).indices, True)
        if self.null_threshold > 0:
            top = top & (score > self.null_threshold)
        return top

    def choose(self, h: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(N, K, M) one-hot schema choice: straight-through Gumbel-softmax while training,
        argmax otherwise."""
        q = self.sel_query(h).unsqueeze(-2)                              # (N, K, 1, dk)
        logits = (q * self.sel_key(candidates)).sum(-1) / math.sqrt(self.key_dim)
        if self.training:
            return F.gumbel_softmax(logits, tau=self.temperature, hard=True)
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)

    def forward(self, h: torch.Tensor, inputs: torch.Tensor) -> CoreStep:
        read, attn = self.input_attention(h, inputs)
        active = self.activity(attn)
        selection = None
        if self.schemata == "per_unit":
            proposal = self.grus.per_unit(read, h)
        else:
            candidates = self.grus.all(read, h)                           # (N, K, G, D)
            if self.selects:
                selection = self.choose(h, candidates)
                proposal = (selection.unsqueeze(-1) * candidates).sum(-2)
            else:
                proposal = candidates[..., 0, :]
        keep = active.unsqueeze(-1)
        h_new = torch.where(keep, proposal, h)                            # inactive: unchanged
        # communication: active units read every unit
        q, k = self.comm_query(h_new), self.comm_key(h_new)
        weights = (torch.einsum("nkd,njd->nkj", q, k) / math.sqrt(self.key_dim)).softmax(-1)
        message = torch.einsum("nkj,njd->nkd", weights, self.comm_value(h_new))
        h_new = torch.where(keep, h_new + message, h_new)
        return CoreStep(h_new, active, attn, selection)


@register_model("scoff")
class SCOFF(PyroModule):
    """SCOFF: K object files, M shared GRU schemata chosen per object file (see the module
    docstring).  A deterministic baseline of the model protocol (:mod:`pyro_vim.models`)."""

    #: the family name this class is registered under
    family = "scoff"
    #: ``python -m pyro_vim.evaluate`` scores slots and module selections, which this lacks
    supports_identification = False

    def __init__(self, config: VIMConfig):
        super().__init__()
        if not isinstance(config, VIMConfig):
            raise TypeError(f"{type(self).__name__} expects a VIMConfig, got "
                            f"{type(config).__name__}")
        config.validate()
        if config.model != self.family:
            raise ValueError(f"{type(self).__name__} was given a config for model "
                             f"{config.model!r}; build it with "
                             "pyro_vim.models.build_model(config)")
        self.config = c = config
        self.settings = s = baseline_settings(c)
        pixel = 2.0 / (c.image_size - 1)
        self.encoder = Encoder(c.encoder_channels, c.encoder_kernel, c.encoder_layers)
        self.core = ObjectFiles(c.num_slots, c.slot_dim, c.encoder_channels + 2,
                                c.num_modules, self.schemata_kind(), s["top_k"],
                                float(s["null_threshold"]), s["key_dim"], s["input_value_dim"],
                                float(s["gumbel_temperature"]))
        # distinct initial states break the symmetry between the units
        self.initial = nn.Parameter(torch.randn(c.num_slots, c.slot_dim) * 0.5)
        self.position = nn.Linear(c.slot_dim, 2)
        self.decoder = BroadcastDecoder(c.slot_dim, c.image_size, c.decoder_channels,
                                        c.decoder_kernel, c.decoder_layers,
                                        extent=c.mask_extent * pixel)
        self.register_buffer("grid", coordinate_grid(c.image_size, c.image_size))

    def schemata_kind(self) -> str:
        """How the core's GRUs are shared (see :class:`ObjectFiles`)."""
        return "shared"

    # ------------------------------------------------------------------ pieces
    def check_frames(self, frames) -> torch.Tensor:
        """Validate (N, T, 3, H, W) frames in [0, 1] (T >= 1)."""
        size = self.config.image_size
        expected = f"(N, T, 3, {size}, {size})"
        if not isinstance(frames, torch.Tensor) or not frames.is_floating_point():
            raise TypeError(f"frames must be a floating point torch.Tensor of shape {expected} "
                            "in [0, 1]")
        if frames.dim() != 5 or tuple(frames.shape[2:]) != (3, size, size) \
                or frames.shape[0] == 0 or frames.shape[1] == 0:
            raise ValueError(f"frames must have shape {expected} with N, T >= 1, got "
                             f"{tuple(frames.shape)}")
        param = next(self.parameters())
        return frames.to(device=param.device, dtype=param.dtype)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> (N, T, H*W, C + 2): encoder features and pixel coordinates."""
        n, t = frames.shape[:2]
        feats = self.encoder(frames.reshape(n * t, *frames.shape[2:]))
        grid = self.grid.expand(n * t, *self.grid.shape)
        return torch.cat([feats, grid], -1).reshape(n, t, feats.shape[1], -1)

    def decode(self, h: torch.Tensor):
        """States (..., K, D) -> rgb (..., K, 3, S, S), mask logits (..., K, S, S) and the
        decoders' positions (..., K, 2) (normalised coordinates)."""
        lead, s = h.shape[:-1], self.config.image_size
        pos = torch.tanh(self.position(h))
        local = torch.ones(lead, dtype=torch.bool, device=h.device)
        local[..., 0] = False                         # unit 0 may draw the background
        rgb, logits = self.decoder(pos.reshape(-1, 2), h.reshape(-1, h.shape[-1]), self.grid,
                                   local=local.reshape(-1))
        return rgb.reshape(*lead, 3, s, s), logits.reshape(*lead, s, s), pos

    def rollout(self, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Teacher-forced predictions of every frame: state t has read frames 0..t-1.

        Returns ``states`` (N, T, K, D), ``active`` (N, T-1, K), ``attention`` (N, T-1, K, 1+HW),
        ``selections`` (N, T-1, K, M) one-hot (absent without a schema choice), ``rgb``,
        ``logits`` and ``positions`` of the decoded states."""
        n, t = frames.shape[:2]
        h = self.initial.expand(n, *self.initial.shape)
        states: List[torch.Tensor] = [h]
        active, attention, selections = [], [], []
        if t > 1:
            inputs = self.encode(frames[:, :-1])     # the last frame is never read
            for i in range(t - 1):
                step = self.core(h, inputs[:, i])
                h = step.h
                states.append(h)
                active.append(step.active)
                attention.append(step.attention)
                if step.selection is not None:
                    selections.append(step.selection)
        hs = torch.stack(states, 1)
        rgb, logits, pos = self.decode(hs)
        out = {"states": hs, "rgb": rgb, "logits": logits, "positions": pos}
        if active:
            out["active"] = torch.stack(active, 1)
            out["attention"] = torch.stack(attention, 1)
        if selections:
            out["selections"] = torch.stack(selections, 1)
        return out

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> the teacher-forced predictions (N, T, 3, H, W)."""
        out = self.rollout(frames)
        return SpatialGaussianMixture(out["rgb"], out["logits"], self.config.sigma_x).mean

    # ------------------------------------------------------------------ Pyro programs
    @property
    def param_store_name(self) -> str:
        return f"{self.family}_{id(self):x}"

    def model(self, frames: torch.Tensor):
        """Every frame observed under N(prediction, sigma_x) (frame t predicted from < t)."""
        frames = self.check_frames(frames)
        pyro.module(self.param_store_name, self)
        recon = self.predict(frames)
        with pyro.plate("videos", frames.shape[0]):
            pyro.sample("x", dist.Normal(recon, self.config.sigma_x).to_event(4), obs=frames)

    def guide(self, frames: torch.Tensor):
        """Empty: the baseline has no latent variables."""

    def programs(self, step: int):
        """The same (model, guide) at every step (single frames during ``pretrain_steps``
        train the prediction of frame 0 from the empty history)."""
        return self.model, self.guide

    def perception_parameters(self):
        """The encoder (what ``freeze_perception`` keeps fixed)."""
        return list(self.encoder.parameters())

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Teacher-forced predictions: ``recon`` (N, T, 3, H, W) (frame t from frames < t; frame
        0 from the initial state), ``masks`` (N, T, K, H, W), ``slots`` (N, T, K, D) the unit
        states, ``positions`` (N, T, K, 2) the decoders' centres in pixels, ``active``
        (N, T-1, K) and, for SCOFF, ``schema_selections`` (N, T-1, K) (the chosen schema).
        Deterministic: schemata are chosen by the argmax, also in training mode."""
        was_training = self.training
        self.eval()
        try:
            out = self.rollout(self.check_frames(frames))
        finally:
            self.train(was_training)
        mixture = SpatialGaussianMixture(out["rgb"], out["logits"], self.config.sigma_x)
        result = {"recon": mixture.mean, "masks": mixture.masks, "slots": out["states"],
                  "positions": coords_to_pixels(out["positions"], self.config.image_size)}
        if "active" in out:
            result["active"] = out["active"]
        if "selections" in out:
            result["schema_selections"] = out["selections"].argmax(-1)
        return result

    @torch.no_grad()
    def summary_metrics(self, batch, chunk: int = 64) -> Dict[str, Any]:
        """Held-out numbers (``metrics.json``): ``recon_mse`` (squared error per frame summed
        over pixels and channels, mean over all T frames as VIM's ``recon_mse``; frame 0 is
        predicted from the empty history), ``recon_mse_per_pixel``, ``recon_mse_per_frame``
        (T), ``recon_mse_predicted`` (frames 1..T-1 only, each predicted from the true previous
        frames; Table 1's measure), ``active_fraction`` and, for SCOFF, ``schema_usage`` (M
        fractions)."""
        frames = batch.frames if isinstance(batch.frames, np.ndarray) else np.asarray(
            batch.frames)
        device = next(self.parameters()).device
        se, active, usage = [], [], []
        for i in range(0, len(frames), chunk):
            part = torch.from_numpy(frames[i:i + chunk]).to(device)
            out = self.infer(part)
            se.append(((out["recon"] - part).double() ** 2).sum((2, 3, 4)).cpu())
            if "active" in out:
                active.append(out["active"].double().mean().item() * len(part))
            if "schema_selections" in out:
                usage.append(F.one_hot(out["schema_selections"],
                                       self.config.num_modules).double().sum((0, 1, 2)).cpu())
        se_all = torch.cat(se)                                            # (N, T)
        pixels = float(np.prod(frames.shape[2:]))
        predicted = se_all[:, 1:]
        result: Dict[str, Any] = {
            "recon_mse": float(se_all.mean()),
            "recon_mse_per_pixel": float(se_all.mean() / pixels),
            "recon_mse_per_frame": se_all.mean(0).tolist(),
            "recon_mse_predicted": float(predicted.mean()) if predicted.numel() else None,
        }
        if active:
            result["active_fraction"] = float(sum(active) / len(frames))
        if usage:
            total = torch.stack(usage).sum(0)
            result["schema_usage"] = (total / total.sum()).tolist()
        return result

    def evaluation_metrics(self, batch) -> Dict[str, Any]:
        """The trainer's periodic held-out metrics: reconstruction only (no slots to match)."""
        out = self.summary_metrics(batch)
        return {k: out[k] for k in ("recon_mse", "recon_mse_predicted", "recon_mse_per_pixel",
                                    "active_fraction", "schema_usage") if k in out}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str, **extra) -> None:
        """Write an atomic checkpoint (config and state) with ``extra`` entries."""
        from ..checkpoint import save_checkpoint
        save_checkpoint(path, model=self, **extra)

    @classmethod
    def load(cls, path: str, map_location="cpu"):
        """Rebuild the saved model (its config) with the saved state."""
        from ..checkpoint import load_checkpoint, load_model_state
        ckpt = load_checkpoint(path, map_location=map_location)
        config = VIMConfig.from_saved(ckpt["config"])
        if config.model != cls.family:
            raise ValueError(f"{path!r} holds a {config.model!r} model, not {cls.family!r}; "
                             "load it with pyro_vim.models.load_model")
        model = cls(config)
        load_model_state(model, ckpt)
        return model

    @classmethod
    def from_config(cls, config: VIMConfig):
        return cls(config)

    def __repr__(self):
        c = self.config
        return (f"{type(self).__name__}(K={c.num_slots}, M={self.core.grus.num} GRUs "
                f"({self.core.schemata}), top_k={self.core.top_k}, image_size={c.image_size})")
