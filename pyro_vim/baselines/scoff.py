"""SCOFF (Goyal et al., 2020) as a deterministic, teacher-forced next-frame baseline (Table 1).

K object files (``config.num_slots``) of size D (``config.slot_dim``) read the previous frame and
are updated by M schemata (``config.num_modules``), GRU cells shared by all object files.  One step
``h_{t-1} -> h_t`` reading the true frame ``x_{t-1}`` (teacher forcing):

1. **Input attention** (``extra["input_attention"]``).  Frame ``x_{t-1}`` is encoded by VIM's
   :class:`~pyro_vim.nn.Encoder` (per-pixel features, concatenated with the pixel's (x, y) so that
   the units can tell where things are: the encoder carries no absolute position).

   * ``"slots"`` (default): the object files' competition for the frame's pixels is VIM's slot
     attention (:class:`~pyro_vim.nn.SlotAttention`, the same module and settings as VIM's
     perception): K slots discovered on frame 0 and followed from frame to frame
     (:meth:`SCOFF.track`); object file k reads slot k's features and position, and its input
     score is the slot's share of the pixels.  The VIM paper's Appendix B describes its
     baselines' input this way: "each object file competes to attend to a part of the previous
     input frame (similar to slot attention)".  Chosen by measurement (2026-12-07, second
     change): with the attentions below, perception pre-training ended with every object file
     decoding nothing (see ``position`` and ``likelihood``).
   * ``"competitive"``: every input row (pixel) is
     shared out among the object files and a *null* competitor by a softmax over them, as in
     slot attention (Locatello et al., 2020) -- the VIM paper's Appendix B: "each object file
     competes to attend to a part of the previous input frame (similar to slot attention)".
     Logits ``q_k . key_p / sqrt(d)`` with ``q_k`` from object file k's state and a learned
     query for the null; an object file reads the mean of the values weighted by the pixels it
     wins (normalised over the pixels).  Its input score is the fraction of the pixels it wins.
   * ``"null_row"``: Goyal et al. (2019)'s input attention as their code does it
     (``BlocksCore`` of github.com/anirudh9119/RIMs, ``event_based/blocks_core.py``): the frame
     is encoded into ONE input vector (a per-pixel linear map to 4 features, flattened, a
     linear map to ``frame_dim``), a null row (a learned key, value zero) is put beside it, and
     each object file's softmax runs over those two rows.  The input score is the attention
     on the input row, ``1 - a_null``.
   * ``"pixel_rows"``: what this module did before 2026-12-07 (kept for its checkpoints): each
     object file's softmax runs over the null row and the H*W pixel rows; the input score is
     ``1 - a_null``.  The object files do not compete for pixels.

2. **Top-k activation.**  The ``top_k`` object files (default: all K) with the highest input
   score are active; with ``null_threshold > 0`` (default 0: off, as in RIM) also only those
   whose score exceeds it.  Inactive object files keep their state *exactly* (through steps 3
   and 4).
3. **Schemata.**  Each of the M GRU schemata proposes ``GRU_m(a_k, h_k)``; the object file picks
   one by key-query attention: a query from ``h_k`` and, by default
   (``schema_keys="per_schema"``), a key per schema ``W_m GRU_m(a_k, h_k)`` (each schema its own
   key map), with a hard straight-through Gumbel-softmax at temperature
   ``gumbel_temperature`` (default 0.5) while training and the argmax otherwise -- the choice of
   SCOFF's code (``SharedBlockGRU``: ``gll_write = GroupLinearLayer(..., n_templates)``,
   ``gumbel_softmax(..., tau=0.5, hard=True)``).  ``schema_keys="shared"``: one key map for all
   schemata (before 2026-12-07).
4. **Communication.**  Active object files read the others (active or not) by key-query
   attention over the object files and add what they read (residual); inactive ones do not
   change.
5. **Decoding.**  Every object file is decoded by VIM's spatial broadcast decoder
   (:class:`~pyro_vim.nn.BroadcastDecoder`, the same sizes as VIM) around a position
   (``extra["position"]``):

   * ``"attention"`` (default): where the object file read in its last input attention -- its
     slot's position (``input_attention="slots"``) or the centroid of the pixels it won
     ("competitive") -- as slot attention's slots sit where they attend.  An inactive object
     file keeps its position.  With ``position_offset`` (default false) plus a learned offset
     ``Linear(h_k)`` (zero at the start).  Measured with the offset (``table1 rim@15min``,
     seeds 0 and 1): seed 0's object files stayed within 0.6 px of their slots and scored
     97.8; seed 1 pushed two of its three object files 25-34 px off their slots, out of the
     frame, and scored 106.3.
   * ``"state"`` (before 2026-12-07's second change): ``tanh(Linear(h_k))``, read from the
     state alone.  Measured: after the 400 pre-training steps every object file of a RIM had
     its position saturated at the frame's corner (tanh at +1, no gradient left) and the
     reconstruction error of single frames was 114 per frame against 125 for the empty frame;
     after 15 minutes the validation error was 108.5 and 118.2 (seeds 0, 1).  A local mask
     that covers no object has no gradient to find one, and nothing ties the state's position
     to what the unit read.

   The object files' RGB images are composited by the
   softmax over their mask logits (the mean of the spatial mixture, like VIM's renders).  Object
   file 0 has no local mask extent (it can draw the background), as VIM's slot 0; with
   ``config.decode_window`` the other object files are decoded in a window around their position
   only, as VIM's object slots (:meth:`~pyro_vim.nn.BroadcastDecoder.decode_slots`).

The prediction of frame t is decoded from the state after reading frames ``0..t-1``.  Frame 0 has
no past: it is decoded from the learned initial state for :meth:`SCOFF.infer`, but left out of
the training loss (``first_frame_loss=False``, default).  The Pyro model observes frames 1..T-1
under ``Normal(prediction, sigma_x)`` (squared error), the guide is empty: Trace_ELBO is the
scaled squared error of the predictions.

**Pre-training** (``pretraining="perception"``, default): during the first
``config.pretrain_steps`` steps the trainer gives single frames, as to VIM (Appendix A.2), and
:meth:`SCOFF.programs` returns the perception programs: the object files read the frame once from
their initial state (steps 1-4) and decode it, and the frame is observed under that
reconstruction -- encoder, input attention, schemata and decoder learn to take a frame apart
before they learn to predict.  ``"sequence"``: the sequence programs at every step (before
2026-12-07; on single frames they trained only frame 0 from the empty history).

RIM (Goyal et al., 2019; :mod:`pyro_vim.baselines.rim`) is the same core without the choice of
schema.

**Settings** live in ``config.extra`` (:data:`DEFAULTS`).  A config of these families carries
every one of them: building the config fills the missing keys with :data:`DEFAULTS`
(:meth:`SCOFF.complete_extra`, called by ``VIMConfig.validate``), so what a checkpoint or
``config.json`` saves is explicit.  A saved config that lacks ``input_attention`` was written
before 2026-12-07; :meth:`SCOFF.saved_config` (called by ``VIMConfig.from_saved``) gives its
missing keys the values of that time (:data:`BEFORE_FIELD`; ``top_k`` None then meant K - 1) and
``decode_window = 0`` (those models ignored it), so its checkpoint rebuilds the model it was.
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
from ..nn.slot_attention import SlotAttention
from ..registry import register_model

__all__ = ["DEFAULTS", "BEFORE_FIELD", "ADDED_LATER", "INPUT_ATTENTIONS", "GRUBank",
           "ObjectFiles", "CoreStep", "SCOFF", "baseline_settings"]

#: The input attentions of :class:`ObjectFiles` (module docstring, step 1).
INPUT_ATTENTIONS = ("slots", "competitive", "null_row", "pixel_rows")

#: ``config.extra`` keys of RIM and SCOFF and the defaults of new configs (None: derived from the
#: config, see :func:`baseline_settings`).
DEFAULTS: Dict[str, Any] = {
    "input_attention": "slots",    # "slots" | "competitive" | "null_row" | "pixel_rows"
    "top_k": None,                 # active units per step (None: every unit, K)
    "null_threshold": 0.0,         # > 0: an active unit's input score must exceed it (0: off)
    "key_dim": None,               # key/query size of every attention (default: keyquery_dim)
    "input_value_dim": None,       # size of what a unit reads from the frame (default: slot_dim)
    "frame_dim": None,             # null_row: size of the encoded frame (default: K * slot_dim)
    "gumbel_temperature": 0.5,     # temperature of SCOFF's straight-through schema choice
    "schema_keys": "per_schema",   # SCOFF: a key map per schema, or one "shared" by all
    "pretraining": "perception",   # programs of the pretrain_steps: "perception" | "sequence"
    "first_frame_loss": False,     # whether frame 0 (predicted from nothing) is in the loss
    "rim_schemata": "per_unit",    # RIM only: "per_unit" GRUs (Goyal et al. 2019) or "single"
    "position": None,              # where a unit decodes: "attention" | "state" (docstring, 5.;
                                   # None: "attention" with the competitive attention)
    "position_offset": False,      # "attention": plus a learned offset Linear(h) (docstring, 5.)
    "likelihood": "mean",          # how predicted frames are observed: "mean" | "mixture"
    "pretrain_likelihood": "mixture",  # ... and pre-training's single frames (SCOFF.observe)
}

#: The values that reproduce RIM/SCOFF models saved before 2026-12-07, for the keys their saved
#: ``extra`` lacks (``top_k`` None meant ``max(1, K - 1)`` then; see :meth:`SCOFF.saved_config`).
BEFORE_FIELD: Dict[str, Any] = {
    "position": "state",
    "likelihood": "mean",
    "pretrain_likelihood": "mean",
    "input_attention": "pixel_rows",
    "null_threshold": 0.5,
    "gumbel_temperature": 1.0,
    "schema_keys": "shared",
    "pretraining": "sequence",
    "first_frame_loss": True,
}

_CHOICES = {"input_attention": INPUT_ATTENTIONS, "schema_keys": ("per_schema", "shared"),
            "pretraining": ("perception", "sequence"), "rim_schemata": ("per_unit", "single"),
            "likelihood": ("mixture", "mean"), "pretrain_likelihood": ("mixture", "mean")}

#: Settings added after 2026-12-07's, with the value that rebuilds a model saved before them
#: (:meth:`SCOFF.saved_config`): ``position`` "state" until 2026-12-07 (second change).
ADDED_LATER: Dict[str, Any] = {"position": "state", "likelihood": "mean",
                               "pretrain_likelihood": "mean", "position_offset": True}


def _check_settings(out: Dict[str, Any], num_slots: int) -> None:
    for name in ("top_k", "key_dim", "input_value_dim", "frame_dim"):
        value = out[name]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"VIMConfig.extra[{name!r}] must be a positive int (or None: the "
                             f"default), got {value!r}")
    if out["top_k"] is not None and out["top_k"] > num_slots:
        raise ValueError(f"VIMConfig.extra['top_k'] ({out['top_k']}) must not exceed num_slots "
                         f"({num_slots})")
    thr = out["null_threshold"]
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 <= thr < 1:
        raise ValueError(f"VIMConfig.extra['null_threshold'] must be a number in [0, 1), got "
                         f"{thr!r}")
    tau = out["gumbel_temperature"]
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0 < tau < math.inf:
        raise ValueError(f"VIMConfig.extra['gumbel_temperature'] must be a positive number, got "
                         f"{tau!r}")
    for name, choices in _CHOICES.items():
        if out[name] not in choices:
            raise ValueError(f"VIMConfig.extra[{name!r}] must be one of {list(choices)}, got "
                             f"{out[name]!r}")
    if out["position"] is not None and out["position"] not in ("attention", "state"):
        raise ValueError("VIMConfig.extra['position'] must be one of ['attention', 'state'] or "
                         f"None (derived), got {out['position']!r}")
    if out["position"] == "attention" and out["input_attention"] not in ("slots",
                                                                         "competitive"):
        raise ValueError("VIMConfig.extra['position'] = 'attention' places each unit where it "
                         "read, which only the 'slots' and 'competitive' input attentions "
                         f"have; with input_attention={out['input_attention']!r} set "
                         "position='state'")
    if not isinstance(out["position_offset"], bool):
        raise ValueError(f"VIMConfig.extra['position_offset'] must be true or false, got "
                         f"{out['position_offset']!r}")
    if not isinstance(out["first_frame_loss"], bool):
        raise ValueError(f"VIMConfig.extra['first_frame_loss'] must be true or false, got "
                         f"{out['first_frame_loss']!r}")


def baseline_settings(config: VIMConfig) -> Dict[str, Any]:
    """The baseline settings of ``config.extra`` (missing keys: :data:`DEFAULTS`), checked, with
    the derived ones resolved: ``top_k`` (K), ``key_dim``, ``input_value_dim``, ``frame_dim``,
    ``position`` ("attention" with the slots and competitive input attentions, "state"
    otherwise)."""
    out = dict(DEFAULTS)
    out.update({k: v for k, v in config.extra.items() if k in DEFAULTS})
    _check_settings(out, config.num_slots)
    derived = {"top_k": config.num_slots, "key_dim": config.keyquery_dim,
               "position": ("attention" if out["input_attention"] in ("slots", "competitive")
                            else "state"),
               "input_value_dim": config.slot_dim,
               "frame_dim": config.num_slots * config.slot_dim}
    for name, value in derived.items():
        if out[name] is None:
            out[name] = value
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
    #: the input attention: "competitive" (N, 1 + K, P), each input row's softmax over the null
    #: (row 0) and the units; "pixel_rows" (N, K, 1 + P) and "null_row" (N, K, 2), each unit's
    #: softmax over the null row (column 0) and the input rows; "slots" (N, K) each slot's share
    #: of the frame's pixels (slot attention's competition)
    attention: torch.Tensor
    selection: Optional[torch.Tensor]   # (N, K, M) one-hot schema choice (None: no choice)
    score: torch.Tensor                 # (N, K) input scores in [0, 1] (what top-k ranks)
    #: "competitive": (N, K, 2) the centroid of the pixels each unit read (the last two input
    #: features are the pixel coordinates); "slots": its slot's position; None otherwise
    where: Optional[torch.Tensor] = None


class ObjectFiles(nn.Module):
    """The recurrent core shared by SCOFF and RIM (steps 1-4 of the module docstring).

    ``schemata``: "shared" (SCOFF: ``num_schemata`` GRUs, one picked per unit and step),
    "per_unit" (RIM: unit k has its own GRU k) or "single" (one GRU for every unit).
    ``attention``: one of :data:`INPUT_ATTENTIONS`; "null_row" needs ``num_inputs`` (P, the rows
    of an encoded frame) and ``frame_dim``.  ``schema_keys``: "per_schema" or "shared".
    """

    def __init__(self, num_units: int, hidden: int, input_dim: int, num_schemata: int,
                 schemata: str, top_k: int, null_threshold: float, key_dim: int,
                 value_dim: int, temperature: float = 0.5, attention: str = "competitive",
                 schema_keys: str = "per_schema", num_inputs: Optional[int] = None,
                 frame_dim: Optional[int] = None, eps: float = 1e-8):
        super().__init__()
        if schemata not in ("shared", "per_unit", "single"):
            raise ValueError(f"schemata must be 'shared', 'per_unit' or 'single', got "
                             f"{schemata!r}")
        if attention not in INPUT_ATTENTIONS:
            raise ValueError(f"attention must be one of {list(INPUT_ATTENTIONS)}, got "
                             f"{attention!r}")
        if schema_keys not in ("per_schema", "shared"):
            raise ValueError(f"schema_keys must be 'per_schema' or 'shared', got {schema_keys!r}")
        if not 1 <= top_k <= num_units:
            raise ValueError(f"top_k must be in 1..{num_units}, got {top_k}")
        self.num_units, self.hidden, self.schemata = num_units, hidden, schemata
        self.top_k, self.null_threshold, self.temperature = top_k, null_threshold, temperature
        self.key_dim, self.attention, self.schema_keys, self.eps = (key_dim, attention,
                                                                     schema_keys, eps)
        # 1. input attention
        if attention == "null_row":
            if not num_inputs or not frame_dim:
                raise ValueError("the null_row attention needs num_inputs and frame_dim")
            # the frame as ONE input vector (RIM's encoded input)
            self.frame = nn.Sequential(nn.Linear(input_dim, 4), nn.ReLU(), nn.Flatten(-2),
                                       nn.Linear(4 * num_inputs, frame_dim), nn.ReLU())
            input_dim = frame_dim
        if attention == "slots":       # slot k is unit k's input: no key-query, no null
            if num_inputs != num_units:
                raise ValueError(f"the slots attention reads one slot per unit: {num_units} "
                                 f"units, {num_inputs} slots")
            self.in_value = nn.Linear(input_dim - 1, value_dim)   # the pixel share: the score
        else:
            self.in_query = nn.Linear(hidden, key_dim, bias=False)
            self.in_key = nn.Linear(input_dim, key_dim)
            self.in_value = nn.Linear(input_dim, value_dim)
        if attention == "competitive":
            self.null_query = nn.Parameter(torch.zeros(key_dim))      # the null competitor
        elif attention != "slots":
            self.null_key = nn.Parameter(torch.zeros(key_dim))        # its value is zero
        # 3. schemata
        grus = {"shared": num_schemata, "per_unit": num_units, "single": 1}[schemata]
        self.grus = GRUBank(grus, value_dim, hidden)
        if schemata == "shared" and num_schemata > 1:
            self.sel_query = nn.Linear(hidden, key_dim, bias=False)
            if schema_keys == "shared":
                self.sel_key = nn.Linear(hidden, key_dim, bias=False)
            else:                     # schema m's key map W_m (nn.Linear's initialisation)
                bound = 1.0 / math.sqrt(hidden)
                self.sel_keys = nn.Parameter(
                    torch.empty(num_schemata, key_dim, hidden).uniform_(-bound, bound))
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
        """h (N, K, D), inputs (N, P, I) -> read values (N, K, V), the attention
        (:class:`CoreStep`'s layout), the units' input scores (N, K) in [0, 1] and, for the
        competitive attention, the centroid (N, K, 2) of the pixels each unit read (the last
        two input features are the pixel's coordinates; None for the other attentions)."""
        if self.attention == "slots":            # unit k is slot k: it reads its own row
            read = self.in_value(inputs[..., :-1])                        # features, position
            score = inputs[..., -1]                                       # its pixel share
            return read, score, score, inputs[..., -3:-1]
        q = self.in_query(h)                                              # (N, K, dk)
        scale = math.sqrt(self.key_dim)
        if self.attention == "competitive":
            keys = self.in_key(inputs)                                    # (N, P, dk)
            null = self.null_query.expand(h.shape[0], 1, -1)
            logits = torch.einsum("nkd,npd->nkp", torch.cat([null, q], 1), keys) / scale
            attn = logits.softmax(1)                        # each input row over null + units
            weights = attn[:, 1:] + self.eps
            weights = weights / weights.sum(-1, keepdim=True)             # over the inputs
            read = torch.einsum("nkp,npv->nkv", weights, self.in_value(inputs))
            score = attn[:, 1:].sum(-1) / max(inputs.shape[1], 1)        # share of rows won
            where = torch.einsum("nkp,npc->nkc", weights, inputs[..., -2:])
            return read, attn, score, where
        if self.attention == "null_row":
            inputs = self.frame(inputs).unsqueeze(1)                      # (N, 1, frame_dim)
        keys = self.in_key(inputs)                                        # (N, P, dk)
        null = self.null_key.expand(h.shape[0], 1, -1)
        logits = torch.einsum("nkd,npd->nkp", q, torch.cat([null, keys], 1))
        attn = (logits / scale).softmax(-1)
        read = torch.einsum("nkp,npv->nkv", attn[..., 1:], self.in_value(inputs))
        return read, attn, 1.0 - attn[..., 0], None

    def activity(self, score: torch.Tensor) -> torch.Tensor:
        """(N, K) bool: the ``top_k`` units with the highest input score, among those whose
        score exceeds ``null_threshold`` (0: no such condition, always ``top_k`` active units as
        in RIM)."""
        top = torch.zeros_like(score, dtype=torch.bool)
        top.scatter_(-1, score.topk(self.top_k, -1).indices, True)
        if self.null_threshold > 0:
            top = top & (score > self.null_threshold)
        return top

    def choice_logits(self, h: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(N, K, M): the query of each unit's state against the key of each schema's
        proposal (N, K, M, D)."""
        q = self.sel_query(h).unsqueeze(-2)                              # (N, K, 1, dk)
        if self.schema_keys == "per_schema":
            keys = torch.einsum("nkmh,mdh->nkmd", candidates, self.sel_keys)
        else:
            keys = self.sel_key(candidates)
        return (q * keys).sum(-1) / math.sqrt(self.key_dim)

    def choose(self, h: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """(N, K, M) one-hot schema choice: straight-through Gumbel-softmax at
        ``temperature`` while training, argmax otherwise."""
        logits = self.choice_logits(h, candidates)
        if self.training:
            return F.gumbel_softmax(logits, tau=self.temperature, hard=True)
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)

    def forward(self, h: torch.Tensor, inputs: torch.Tensor) -> CoreStep:
        read, attn, score, where = self.input_attention(h, inputs)
        active = self.activity(score)
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
        return CoreStep(h_new, active, attn, selection, score, where)


@register_model("scoff")
class SCOFF(PyroModule):
    """SCOFF: K object files, M shared GRU schemata chosen per object file (see the module
    docstring).  A deterministic baseline of the model protocol (:mod:`pyro_vim.models`)."""

    #: the family name this class is registered under
    family = "scoff"
    #: ``python -m pyro_vim.evaluate`` scores slots and module selections, which this lacks
    supports_identification = False
    #: frame t of ``infer(frames)["recon"]`` is predicted from the true frames < t (Table 1's
    #: (a); the validation error of :func:`pyro_vim.baselines.table1.one_step_errors`)
    teacher_forced = True

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
        rows, row_dim = c.image_size * c.image_size, c.encoder_channels + 2
        if s["input_attention"] == "slots":         # VIM's perception: K tracked slots
            self.slot_attention = SlotAttention(c.num_slots, c.encoder_channels, c.slot_dim,
                                                hidden_dim=c.update_hidden,
                                                colour_sigma=c.colour_sigma, init=c.slot_init,
                                                background=c.background_colour)
            rows, row_dim = c.num_slots, c.slot_dim + 3
        self.core = ObjectFiles(c.num_slots, c.slot_dim, row_dim,
                                c.num_modules, self.schemata_kind(), s["top_k"],
                                float(s["null_threshold"]), s["key_dim"], s["input_value_dim"],
                                float(s["gumbel_temperature"]), s["input_attention"],
                                s["schema_keys"], rows, s["frame_dim"])
        # distinct initial states break the symmetry between the units
        self.initial = nn.Parameter(torch.randn(c.num_slots, c.slot_dim) * 0.5)
        self.position = nn.Linear(c.slot_dim, 2)           # the initial state's (and "state")
        if s["position"] == "attention" and s["position_offset"]:   # from where it read
            self.offset = nn.Linear(c.slot_dim, 2)
            nn.init.zeros_(self.offset.weight)
            nn.init.zeros_(self.offset.bias)
        self.decoder = BroadcastDecoder(c.slot_dim, c.image_size, c.decoder_channels,
                                        c.decoder_kernel, c.decoder_layers,
                                        extent=c.mask_extent * pixel, window=c.decode_window)
        self.register_buffer("grid", coordinate_grid(c.image_size, c.image_size))

    def schemata_kind(self) -> str:
        """How the core's GRUs are shared (see :class:`ObjectFiles`)."""
        return "shared"

    # ------------------------------------------------------------------ saved settings
    @classmethod
    def complete_extra(cls, extra: Dict[str, Any], config: VIMConfig) -> Dict[str, Any]:
        """``extra`` with every baseline setting written out (missing keys: :data:`DEFAULTS`),
        checked; ``VIMConfig.validate`` calls it for configs of this family."""
        out = dict(extra)
        for key, value in DEFAULTS.items():
            out.setdefault(key, value)
        _check_settings(out, config.num_slots)
        return out

    @classmethod
    def saved_config(cls, config: VIMConfig, saved_extra: Dict[str, Any]) -> VIMConfig:
        """The config a checkpoint or run folder saved as ``config`` (already built, its
        ``extra`` completed with today's defaults) with ``saved_extra`` the ``extra`` dict it
        stored.  Without ``input_attention`` it was saved before 2026-12-07: its missing keys get
        :data:`BEFORE_FIELD`, ``top_k`` None becomes K - 1 and ``decode_window`` 0 (ignored by
        those models).  With it, the keys added since (:data:`ADDED_LATER`) that it lacks get
        the value of its time.  ``VIMConfig.from_saved`` calls it."""
        extra = dict(saved_extra)
        if "input_attention" in saved_extra:
            missing = {k: v for k, v in ADDED_LATER.items() if k not in saved_extra}
            return config.replace(extra={**config.extra, **missing}) if missing else config
        for key, value in BEFORE_FIELD.items():
            extra.setdefault(key, value)
        if extra.get("top_k") is None:
            extra["top_k"] = max(1, config.num_slots - 1)
        return config.replace(extra=extra, decode_window=0)

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
        """(N, T, 3, H, W) -> the input rows the units attend to: with ``inputs="pixels"``
        (N, T, H*W, C + 2), every pixel's encoder features and coordinates; with "slots"
        (N, T, K, D + 2), the K slots that VIM's slot attention discovers on each frame
        (features and positions; seeded, ``config.discovery_iters`` iterations)."""
        n, t = frames.shape[:2]
        flat = frames.reshape(n * t, *frames.shape[2:])
        feats = self.encoder(flat)
        if hasattr(self, "slot_attention"):
            return self.track(feats.reshape(n, t, *feats.shape[1:]),
                              frames.flatten(3).transpose(2, 3))
        grid = self.grid.expand(n * t, *self.grid.shape)
        return torch.cat([feats, grid], -1).reshape(n, t, feats.shape[1], -1)

    def place(self, h: torch.Tensor, where: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The decoders' positions (..., K, 2) (normalised coordinates) of states (..., K, D):
        with ``position="attention"`` ``where``, where each unit last read
        (:class:`CoreStep`), plus the learned offset with ``position_offset``;
        ``tanh(Linear(h))`` with "state" or where nothing was read yet (``where`` None: the
        initial state)."""
        if where is None or self.settings["position"] != "attention":
            return torch.tanh(self.position(h))
        return where + self.offset(h) if hasattr(self, "offset") else where

    def track(self, feats: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """``input_attention="slots"``: VIM's slot attention discovers K slots on frame 0
        (seeded, ``config.discovery_iters`` iterations) and follows them from frame to frame
        (each frame's slots start from the previous frame's, ``config.track_iters``
        iterations).  feats (N, T, HW, C), pixels (N, T, HW, 3) -> rows (N, T, K, D + 3):
        slot k's features, position and share of the frame's pixels (its attention mass)."""
        c, out, rows = self.config, None, []
        for i in range(feats.shape[1]):
            if out is None:
                out = self.slot_attention(feats[:, i], pixels[:, i], self.grid,
                                          iters=c.discovery_iters)
            else:
                out = self.slot_attention(feats[:, i], pixels[:, i], self.grid, pos=out.pos,
                                          feat=out.feat, colour=out.colour,
                                          iters=c.track_iters)
            rows.append(torch.cat([out.feat, out.pos, out.attn.mean(-1, keepdim=True)], -1))
        return torch.stack(rows, 1)

    def decode(self, h: torch.Tensor, pos: Optional[torch.Tensor] = None):
        """States (..., K, D) -> rgb (..., K, 3, S, S), mask logits (..., K, S, S) and the
        decoders' positions (..., K, 2) (normalised coordinates; default :meth:`place` without
        a read).  Unit 0 may draw the background; the others have local masks (in their window
        with ``decode_window``)."""
        if pos is None:
            pos = self.place(h)
        rgb, logits = self.decoder.decode_slots(pos, h, self.grid)
        return rgb, logits, pos

    def rollout(self, frames: torch.Tensor, decode_from: int = 0) -> Dict[str, torch.Tensor]:
        """Teacher-forced predictions of every frame: state t has read frames 0..t-1.

        Returns ``states`` (N, T, K, D), ``active`` (N, T-1, K), ``attention`` (N, T-1, ...) (the
        layout of :class:`CoreStep`), ``scores`` (N, T-1, K), ``selections`` (N, T-1, K, M)
        one-hot (absent without a schema choice), and ``rgb``, ``logits`` and ``positions`` of
        the states ``decode_from..T-1`` (the frames they predict)."""
        n, t = frames.shape[:2]
        h = self.initial.expand(n, *self.initial.shape)
        pos = self.place(h)
        states: List[torch.Tensor] = [h]
        places: List[torch.Tensor] = [pos]
        active, attention, scores, selections = [], [], [], []
        if t > 1:
            inputs = self.encode(frames[:, :-1])     # the last frame is never read
            for i in range(t - 1):
                step = self.core(h, inputs[:, i])
                h = step.h
                new = self.place(h, step.where)
                pos = torch.where(step.active.unsqueeze(-1), new, pos)   # inactive: kept
                states.append(h)
                places.append(pos)
                active.append(step.active)
                attention.append(step.attention)
                scores.append(step.score)
                if step.selection is not None:
                    selections.append(step.selection)
        hs = torch.stack(states, 1)
        rgb, logits, pos = self.decode(hs[:, decode_from:],
                                       torch.stack(places, 1)[:, decode_from:])
        out = {"states": hs, "rgb": rgb, "logits": logits, "positions": pos}
        if active:
            out["active"] = torch.stack(active, 1)
            out["attention"] = torch.stack(attention, 1)
            out["scores"] = torch.stack(scores, 1)
        if selections:
            out["selections"] = torch.stack(selections, 1)
        return out

    def predictive(self, frames: torch.Tensor, decode_from: int = 0) -> SpatialGaussianMixture:
        """The spatial mixture (batch (N, T - decode_from)) of the units' decoded predictions of
        frames ``decode_from..T-1``, teacher-forced."""
        out = self.rollout(frames, decode_from)
        return SpatialGaussianMixture(out["rgb"], out["logits"], self.config.sigma_x)

    def predict(self, frames: torch.Tensor, decode_from: int = 0) -> torch.Tensor:
        """(N, T, 3, H, W) -> the teacher-forced predictions (N, T - decode_from, 3, H, W) of
        frames ``decode_from..T-1`` (the means of :meth:`predictive`)."""
        return self.predictive(frames, decode_from).mean

    def perceive(self, frames: torch.Tensor) -> SpatialGaussianMixture:
        """Perception: every frame of (N, T, 3, H, W) read once by the units from their initial
        state (one core step) and decoded -> the spatial mixture, batch (N, T)."""
        n, t = frames.shape[:2]
        inputs = self.encode(frames.reshape(n * t, 1, *frames.shape[2:]))[:, 0]
        step = self.core(self.initial.expand(n * t, *self.initial.shape), inputs)
        rgb, logits, _ = self.decode(step.h, self.place(step.h, step.where))
        return SpatialGaussianMixture(rgb.reshape(n, t, *rgb.shape[1:]),
                                      logits.reshape(n, t, *logits.shape[1:]),
                                      self.config.sigma_x)

    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) -> the reconstructions of :meth:`perceive` (their means)."""
        return self.perceive(frames).mean

    def observe(self, mixture: SpatialGaussianMixture, frames: torch.Tensor,
                likelihood: str) -> None:
        """The ``x`` site: ``frames`` (N, T', 3, H, W) observed under the units' decoded
        ``mixture`` (batch (N, T')): with ``likelihood="mixture"`` under the spatial Gaussian
        mixture itself, as VIM's frames (each unit explains the pixels its mask claims); with
        "mean" under ``Normal(mixture.mean, sigma_x)``, the squared error of the composited
        prediction.  The predictions of :meth:`model` are observed under
        ``settings["likelihood"]`` (default "mean": the published baselines train on the
        pixel error of their prediction, and Table 1 scores it), the single frames of
        :meth:`pretrain_model` under ``settings["pretrain_likelihood"]`` (default "mixture":
        VIM's perception pre-training).  Measured (2026-12-07, second change): with "mean" in
        pre-training, within 100 steps every RIM decoded the black frame, the training loss
        the same for every input and position setting, and stayed there; with the mixture
        in dynamics too, the training loss kept falling while the validation error (of the
        mean) stalled at 107-110 after 300 dynamics steps."""
        with pyro.plate("videos", frames.shape[0]):
            if likelihood == "mixture":
                pyro.sample("x", mixture.to_event(1), obs=frames)
            else:
                pyro.sample("x", dist.Normal(mixture.mean, self.config.sigma_x).to_event(4),
                            obs=frames)

    # ------------------------------------------------------------------ Pyro programs
    @property
    def param_store_name(self) -> str:
        return f"{self.family}_{id(self):x}"

    def model(self, frames: torch.Tensor):
        """Frames 1..T-1 observed (:meth:`observe`), frame t predicted from frames
        < t (with ``first_frame_loss``: frame 0 too, predicted from the initial state)."""
        frames = self.check_frames(frames)
        pyro.module(self.param_store_name, self)
        first = 0 if self.settings["first_frame_loss"] else 1
        if frames.shape[1] <= first:
            raise ValueError(f"{type(self).__name__}.model predicts frames 1..T-1 from the "
                             f"frames before them: it needs T >= 2 frames, got "
                             f"{frames.shape[1]} (single frames train the perception "
                             "programs, programs(step) during pretrain_steps)")
        self.observe(self.predictive(frames, decode_from=first), frames[:, first:],
                     self.settings["likelihood"])

    def pretrain_model(self, frames: torch.Tensor):
        """Perception pre-training: every frame observed under N(its reconstruction, sigma_x)
        (:meth:`reconstruct`: the units read the frame from their initial state, then decode)."""
        frames = self.check_frames(frames)
        pyro.module(self.param_store_name, self)
        self.observe(self.perceive(frames), frames, self.settings["pretrain_likelihood"])

    def guide(self, frames: torch.Tensor):
        """Empty: the baseline has no latent variables."""

    def programs(self, step: int):
        """The (model, guide) pair of global step ``step``: during the first
        ``config.pretrain_steps`` steps (single frames, as VIM's slot-attention pre-training)
        the perception programs (:meth:`pretrain_model`), then the next-frame programs
        (:meth:`model`).  ``pretraining="sequence"``: :meth:`model` at every step."""
        if step < self.config.pretrain_steps and self.settings["pretraining"] == "perception":
            return self.pretrain_model, self.guide
        return self.model, self.guide

    def perception_parameters(self):
        """The encoder, the slot attention (``input_attention="slots"``) and, for the null_row
        attention, the frame's encoding (what ``freeze_perception`` keeps fixed)."""
        params = list(self.encoder.parameters())
        if hasattr(self, "slot_attention"):
            params += list(self.slot_attention.parameters())
        if hasattr(self.core, "frame"):
            params += list(self.core.frame.parameters())
        return params

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def infer(self, frames: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Teacher-forced predictions: ``recon`` (N, T, 3, H, W) (frame t from frames < t; frame
        0 from the initial state, not trained unless ``first_frame_loss``), ``masks``
        (N, T, K, H, W), ``slots`` (N, T, K, D) the unit states, ``positions`` (N, T, K, 2) the
        decoders' centres in pixels, ``active`` (N, T-1, K) and, for SCOFF, ``schema_selections``
        (N, T-1, K) (the chosen schema).
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
        """Held-out numbers (``metrics.json``): ``recon_mse``, the squared error per frame
        summed over pixels and channels of frames 1..T-1, each predicted from the true previous
        frames (Table 1's measure; frame 0 has no past: predicted from the initial state alone,
        and trained only with ``first_frame_loss``, it is left out), ``recon_mse_per_pixel``
        (the same per value), ``recon_mse_all_frames`` (frames 0..T-1, frame 0 included),
        ``recon_mse_per_frame`` (T entries, frame 0 first), ``active_fraction`` and, for SCOFF,
        ``schema_usage`` (M fractions)."""
        frames = batch.frames if isinstance(batch.frames, np.ndarray) else np.asarray(
            batch.frames)
        if frames.ndim != 5 or frames.shape[1] < 2:
            raise ValueError(f"{type(self).__name__}.summary_metrics scores frames 1..T-1, "
                             f"each predicted from the frames before it: it needs videos of "
                             f"T >= 2 frames, got frames of shape {frames.shape}")
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
        predicted = se_all[:, 1:]                                         # frames with a past
        result: Dict[str, Any] = {
            "recon_mse": float(predicted.mean()),
            "recon_mse_per_pixel": float(predicted.mean() / pixels),
            "recon_mse_all_frames": float(se_all.mean()),
            "recon_mse_per_frame": se_all.mean(0).tolist(),
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
        return {k: out[k] for k in ("recon_mse", "recon_mse_all_frames", "recon_mse_per_pixel",
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
                f"({self.core.schemata}), input_attention={self.core.attention!r}, "
                f"top_k={self.core.top_k}, image_size={c.image_size})")
