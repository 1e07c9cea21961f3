"""One object describes an experiment: :class:`VIMConfig` and its presets.

``VIMConfig.preset("paper")`` follows Appendix A of the paper (64-channel 5x5 CNN encoder and
broadcast decoder, 128-unit transition modules, K=4 slots, M=5 modules, the 6->20 frame length
curriculum and slot-attention pre-training with learning-rate warm-up).  ``VIMConfig.preset("cpu")``
is the small variant that trains on two CPU cores: 32 channels, a 3x3 encoder (2 layers), a
per-pixel (1x1) slot-centric broadcast decoder, 32-d slot features, 64-unit modules, M=4 modules,
sequences of 4 -> 8 frames, 400 pre-training steps and 800 dynamics steps (about 10 minutes on
two cores; see BENCHMARKS.md).  Both presets use the seeded slot-attention start
(``slot_init="seeded"``) and local object masks (``mask_extent``).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from . import registry
from .nn.slot_attention import BACKGROUND_COLOURS, SLOT_INITS

PRESETS = ("cpu", "paper")
DATASETS = ("random_walk", "compositional", "ood", "npz")
#: Top-level keys of configs written before the ``data`` section existed, and where they went.
_LEGACY_DATA_KEYS = {"dataset": "name", "num_objects": "num_objects"}
#: Fields added after configs were first saved, with the value that reproduces those configs'
#: models (a checkpoint restores exactly what was trained).  A dict without the key gets it.
_BEFORE_FIELD = {"prior_octaves": 0, "r_kl": "sample", "reseed": False,
                 "hold_hidden": False, "merge_every": 0, "reseed_median": False,
                 "iteration_prior": "current"}


@dataclass
class DataConfig:
    """The data generator of an experiment (:func:`pyro_vim.data.make_dataset` arguments).

    The frames' side is the top-level ``VIMConfig.image_size`` (model and data share it).
    ``radius`` and ``colors`` are the balls' (``random_walk``, ``compositional``); ``ood``
    objects take their own sizes and palette.  ``min_moves``/``max_moves`` are the
    compositional data's number of atomic moves between two frames.  ``name = "npz"`` trains on
    recorded videos: ``path`` is a directory of ``.npz`` shards (:mod:`pyro_vim.data.shards`);
    the generator fields are then unused.
    """
    name: str = "random_walk"
    num_objects: int = 3
    step: int = 3
    radius: int = 3
    colors: Optional[List[List[float]]] = None
    min_moves: int = 1
    max_moves: int = 5
    background: Optional[Union[str, List[float]]] = None   # None (black), RGB, or "texture"
    texture_seed: int = 0
    path: Optional[str] = None             # name = "npz": the directory of .npz shards

    def validate(self) -> "DataConfig":
        if self.name not in DATASETS:
            raise ValueError(f"VIMConfig.data.name must be one of {DATASETS}, got {self.name!r}")
        for name in ("num_objects", "step", "radius", "min_moves", "max_moves"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"VIMConfig.data.{name} must be a positive int, got {value!r}")
        if self.min_moves > self.max_moves:
            raise ValueError(f"VIMConfig.data.min_moves ({self.min_moves}) must not exceed "
                             f"data.max_moves ({self.max_moves})")
        if self.colors is not None:
            ok = isinstance(self.colors, (list, tuple)) and len(self.colors) > 0 and all(
                isinstance(c, (list, tuple)) and len(c) == 3 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                    for v in c) for c in self.colors)
            if not ok:
                raise ValueError("VIMConfig.data.colors must be None or a non-empty list of RGB "
                                 f"triples in [0, 1], got {self.colors!r}")
            self.colors = [[float(v) for v in c] for c in self.colors]
        bg = self.background
        if isinstance(bg, (list, tuple)):
            if len(bg) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                       and 0 <= v <= 1 for v in bg):
                raise ValueError("VIMConfig.data.background must be None, 'black', 'texture' or "
                                 f"an RGB triple in [0, 1], got {bg!r}")
            self.background = [float(v) for v in bg]
        elif bg is not None and bg not in ("black", "texture"):
            raise ValueError("VIMConfig.data.background must be None, 'black', 'texture' or an "
                             f"RGB triple in [0, 1], got {bg!r}")
        if isinstance(self.texture_seed, bool) or not isinstance(self.texture_seed, int) \
                or self.texture_seed < 0:
            raise ValueError(f"VIMConfig.data.texture_seed must be a non-negative int, got "
                             f"{self.texture_seed!r}")
        if self.name == "npz" and (not isinstance(self.path, str) or not self.path):
            raise ValueError("VIMConfig.data.name='npz' needs data.path, a directory of .npz "
                             f"shards; got data.path={self.path!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"VIMConfig.data.path must be a string, got {self.path!r}")
        return self

    def generator_kwargs(self, image_size: int) -> Dict[str, Any]:
        """Keyword arguments of the generator class named by ``name``."""
        kwargs: Dict[str, Any] = dict(num_objects=self.num_objects, image_size=image_size,
                                      step=self.step, background=self.background,
                                      texture_seed=self.texture_seed)
        if self.name in ("random_walk", "compositional"):
            kwargs.update(radius=self.radius, colors=self.colors)
        if self.name == "compositional":
            kwargs.update(min_moves=self.min_moves, max_moves=self.max_moves)
        return kwargs


@dataclass
class VIMConfig:
    # -- what is built: model family and its swappable parts (chosen by name) ---------------
    model: str = "vim"
    prior: str = "keyquery"          # module-selection prior: "keyquery" | "uniform"
    guide: str = "slot_attention"    # variational guide: "slot_attention" | "keyquery"
    # -- data --------------------------------------------------------------------------------
    image_size: int = 32
    data: DataConfig = field(default_factory=DataConfig)
    # -- architecture ------------------------------------------------------------------------
    num_slots: int = 4          # K
    num_modules: int = 4        # M
    slot_dim: int = 32          # size of the appearance part of a slot state h = (pos, feat)
    encoder_channels: int = 32
    encoder_kernel: int = 3
    encoder_layers: int = 2
    decoder_channels: int = 32
    decoder_kernel: int = 1     # 1: per-pixel MLP decoder; 5: the paper's 5x5 conv decoder
    decoder_layers: int = 1     # hidden layers after the broadcast layer
    mask_extent: float = 5.0    # pixels: initial extent of object slots' masks (0: not local)
    decode_window: int = 0      # pixels: decode object slots only in a window this wide around
    #                             their position, no mask outside it (0: the whole frame)
    module_hidden: int = 64     # width of each transition module MLP (Table 4: 128)
    update_hidden: int = 64     # width of the Gaussian-update MLPs (Table 4: 64)
    keyquery_dim: int = 32      # key/query size of the selection attention (A.1: 64)
    discovery_iters: int = 3    # slot-attention iterations on the context frame
    colour_sigma: float = 0.15  # initial colour bandwidth of the slot-attention k-means term
    slot_init: str = "seeded"   # discovery start: "seeded" on the frame or "learned" per slot
    track_iters: int = 1        # slot-attention steps from h_{t-1} onto frame t in the guide
    hold_hidden: bool = True    # a slot that wins almost no pixel keeps its position/colour
    reseed: bool = True         # a duplicated slot restarts tracking on unexplained pixels
    reseed_median: bool = True  # ... and so does an object slot holding the frame's median
    #                             colour (the background), which the median colour explains
    background_colour: str = "learned"  # the seeded background slot's starting colour:
    #                             "learned" (a parameter) or "median" (each frame's median colour)
    iterations: int = 1         # k of VIM-k: module selections/updates between two frames
    plan_lookahead: bool = False  # VIM-k guide (training; infer with stay=False): score an
    #                             iteration's candidate (all but the last) by the distance the
    #                             best next module reaches from it (False: greedy, its own
    #                             distance to the observation)
    iteration_prior: str = "start"  # VIM-k's selection prior: "start" (every iteration's
    #                             p(r | h_{t-1}): the k choices i.i.d. given h_{t-1}) or
    #                             "current" (iteration i's p(r | the state after iteration i-1))
    module_init_scale: float = 1.0  # initial module translation, in pixels (near the identity)
    # -- probabilistic model -----------------------------------------------------------------
    temperature: float = 1.0    # relaxed one-hot temperature (A.1: fixed at 1)
    sigma_x: float = 0.1        # std of each pixel's Gaussian mixture components
    z0_scale: float = 0.02      # std of the discovery posterior/prior p(z_0 | c)
    selection_scale: float = -1.0  # pixels: distance scale of the module-selection posterior;
    #                             -1 derives it from the data: a third of the generator's step
    #                             (1 px for 3 px moves), 1 px for recorded (npz) videos
    z_pos_scale: float = 0.5    # pixels: std of the prior on the position part of z_t
    straight_through: bool = False  # mix candidates by the hard choice (forward) with the
    #                             relaxed sample's gradient (backward); False: the relaxed mix
    test_choices: str = "hard"  # how choices mix the candidates in eval mode: "hard" (the chosen
    #                             module only; A.1: "the hard version during testing") or
    #                             "relaxed" (as in training).  Training is unaffected.
    r_kl: str = "categorical"   # module-choice KL: "categorical" (analytic, between the choice
    #                             distributions) or "sample" (Trace_ELBO's relaxed Monte Carlo)
    merge_every: int = 25       # dynamics steps between checks for duplicated modules, whose
    #                             less used copy is reset to the identity (0: never;
    #                             pyro_vim.duplicates)
    prior_octaves: int = -1     # octave features of positions in the selection prior: -1 derives
    #                             them from image_size (finest period <= 4 px), 0 = raw positions
    # -- training ----------------------------------------------------------------------------
    batch_size: int = 32
    lr: float = 1e-3
    steps: int = 800            # dynamics steps after pre-training (the cpu curve peaks near here)
    warmup_steps: int = 100
    lr_half_life: int = 0       # dynamics learning rate halves every this many steps (0: never)
    freeze_perception: bool = False  # keep encoder + slot attention fixed after pre-training
    clip_norm: float = 1e6      # global gradient-norm clipping (the ELBO sums pixels)
    pretrain_steps: int = 400   # slot-attention pre-training on single frames (A.2)
    pretrain_lr: float = 2e-3
    seq_len_start: int = 4      # length curriculum (A.2: 6 -> 20, +2 every 40 epochs)
    seq_len_max: int = 8
    seq_len_increment: int = 2
    seq_len_every: int = 500
    z_kl_weight_start: float = 10.0   # poutine.scale on z_t: modules must explain motion first
    z_kl_weight_end: float = 1.0
    z_kl_anneal_steps: int = 1000
    eval_every: int = 100
    eval_sequences: int = 32
    eval_seq_len: int = 10
    seed: int = 0
    extra: Dict[str, Any] = field(default_factory=dict)
    # -- wall-clock budget (Table 1: every family trains for the same time) -------------------
    time_budget_s: float = 0.0  # training stops cleanly (checkpoint saved) after this many
    #                             seconds of training, summed over resumes (0: no budget)

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "VIMConfig":
        if isinstance(self.data, dict):
            self.data = _data_from_dict(self.data)
        if not isinstance(self.data, DataConfig):
            raise ValueError(f"VIMConfig.data must be a DataConfig or a dict, got "
                             f"{type(self.data).__name__}")
        self.data.validate()
        for kind in ("model", "prior", "guide"):
            names = sorted(registry._TABLES[kind])
            if getattr(self, kind) not in names:
                raise ValueError(f"VIMConfig.{kind} must be one of {names} (the registered "
                                 f"{kind}s), got {getattr(self, kind)!r}")
        positive = ("image_size", "num_slots", "num_modules", "slot_dim",
                    "encoder_channels", "encoder_kernel", "encoder_layers", "decoder_channels",
                    "decoder_kernel", "decoder_layers", "module_hidden", "update_hidden",
                    "keyquery_dim", "discovery_iters", "track_iters", "iterations", "batch_size",
                    "seq_len_start", "seq_len_max", "seq_len_every", "eval_sequences")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"VIMConfig.{name} must be a positive int, got {value!r}")
        if not (self.selection_scale == -1 or (
                not isinstance(self.selection_scale, bool)
                and isinstance(self.selection_scale, (int, float))
                and 0 < self.selection_scale < math.inf)):
            raise ValueError(f"VIMConfig.selection_scale must be a positive finite number of "
                             f"pixels, or -1 (derived from the data's step), "
                             f"got {self.selection_scale!r}")
        for name in ("temperature", "sigma_x", "z0_scale", "z_pos_scale",
                     "colour_sigma", "lr", "pretrain_lr", "clip_norm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise ValueError(f"VIMConfig.{name} must be a positive finite number, "
                                 f"got {value!r}")
        for name in ("z_kl_weight_start", "z_kl_weight_end", "module_init_scale", "mask_extent"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value < math.inf:
                raise ValueError(f"VIMConfig.{name} must be a non-negative finite number, "
                                 f"got {value!r}")
        if isinstance(self.eval_seq_len, bool) or not isinstance(self.eval_seq_len, int) \
                or self.eval_seq_len < 2:
            raise ValueError(f"VIMConfig.eval_seq_len must be an int >= 2, "
                             f"got {self.eval_seq_len!r}")
        if isinstance(self.merge_every, bool) or not isinstance(self.merge_every, int) \
                or self.merge_every < 0:
            raise ValueError(f"VIMConfig.merge_every must be an int >= 0 (dynamics steps "
                             f"between duplicate-module checks, 0: never), "
                             f"got {self.merge_every!r}")
        if isinstance(self.prior_octaves, bool) or not isinstance(self.prior_octaves, int) \
                or self.prior_octaves < -1:
            raise ValueError(f"VIMConfig.prior_octaves must be an int >= -1 (-1: derived from "
                             f"image_size, 0: raw positions), got {self.prior_octaves!r}")
        if isinstance(self.decode_window, bool) or not isinstance(self.decode_window, int) \
                or self.decode_window < 0 or self.decode_window == 1:
            raise ValueError(f"VIMConfig.decode_window must be 0 (decode the whole frame) or an "
                             f"int >= 2 (pixels), got {self.decode_window!r}")
        if self.decode_window and not self.mask_extent:
            raise ValueError("VIMConfig.decode_window needs local object masks (mask_extent > 0): "
                             "without them every slot may explain any pixel")
        if not isinstance(self.straight_through, bool):
            raise ValueError(f"VIMConfig.straight_through must be a bool, got "
                             f"{self.straight_through!r}")
        for name in ("reseed", "hold_hidden", "reseed_median", "plan_lookahead"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"VIMConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.iteration_prior not in ("current", "start"):
            raise ValueError(f"VIMConfig.iteration_prior must be 'current' or 'start', got "
                             f"{self.iteration_prior!r}")
        if self.test_choices not in ("hard", "relaxed"):
            raise ValueError(f"VIMConfig.test_choices must be 'hard' or 'relaxed', got "
                             f"{self.test_choices!r}")
        if self.r_kl not in ("sample", "categorical"):
            raise ValueError(f"VIMConfig.r_kl must be 'sample' or 'categorical', got "
                             f"{self.r_kl!r}")
        if self.background_colour not in BACKGROUND_COLOURS:
            raise ValueError(f"VIMConfig.background_colour must be one of {BACKGROUND_COLOURS}, "
                             f"got {self.background_colour!r}")
        if self.slot_init not in SLOT_INITS:
            raise ValueError(f"VIMConfig.slot_init must be one of {SLOT_INITS}, "
                             f"got {self.slot_init!r}")
        if not isinstance(self.freeze_perception, bool):
            raise ValueError(f"VIMConfig.freeze_perception must be a bool, "
                             f"got {self.freeze_perception!r}")
        if isinstance(self.time_budget_s, bool) or not isinstance(
                self.time_budget_s, (int, float)) or not 0 <= self.time_budget_s < math.inf:
            raise ValueError(f"VIMConfig.time_budget_s must be a non-negative finite number of "
                             f"seconds (0: no budget), got {self.time_budget_s!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"VIMConfig.extra must be a dict, got {type(self.extra).__name__}")
        if self.decoder_kernel % 2 == 0 or self.encoder_kernel % 2 == 0:
            raise ValueError("VIMConfig.encoder_kernel and decoder_kernel must be odd")
        if self.num_slots < self.data.num_objects:
            raise ValueError(
                f"VIMConfig.num_slots ({self.num_slots}) must be >= data.num_objects "
                f"({self.data.num_objects}): every object needs a slot")
        if self.seq_len_start < 2 or self.seq_len_max < self.seq_len_start:
            raise ValueError("VIMConfig needs 2 <= seq_len_start <= seq_len_max")
        for name in ("steps", "pretrain_steps", "warmup_steps", "z_kl_anneal_steps",
                     "lr_half_life",
                     "eval_every", "seq_len_increment", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"VIMConfig.{name} must be a non-negative int, got {value!r}")
        return self

    def make_generator(self):
        """The data generator this config describes (:func:`pyro_vim.data.make_dataset`)."""
        if self.data.name == "npz":
            from .data.shards import ShardData
            return ShardData(self.data.path, self.image_size, holdout=self.eval_sequences,
                             seed=self.seed)
        from .data import make_dataset
        return make_dataset(self.data.name, **self.data.generator_kwargs(self.image_size))

    @property
    def num_objects(self) -> int:
        """Objects per video: ``data.num_objects`` (``VIMConfig(num_objects=...)`` sets it)."""
        return self.data.num_objects

    @property
    def dataset(self) -> str:
        """The data generator's name: ``data.name`` (``VIMConfig(dataset=...)`` sets it)."""
        return self.data.name

    @property
    def prior_octaves_resolved(self) -> int:
        """The prior's octaves: ``prior_octaves``, or for -1 the fewest whose finest period,
        (image_size - 1) / 2^(octaves - 1) pixels, is at most 4 px (4 for 32x32 frames)."""
        if self.prior_octaves >= 0:
            return self.prior_octaves
        return max(1, math.ceil(math.log2(max(self.image_size - 1, 1) / 4.0)) + 1)

    @property
    def selection_scale_resolved(self) -> float:
        """The module-selection posterior's distance scale in pixels: ``selection_scale``, or
        for -1 a third of the data's move (``data.step / 3``: 1 px for the paper's 3 px
        moves), so that the candidates of two different moves stay about three scales
        apart whatever the step (at 2 px moves and a 1 px scale the relaxed choice mixes in the
        wrong candidates and the modules overshoot, BENCHMARKS.md).  Recorded videos
        (``data.name = "npz"``) declare no step: 1 px, as for the paper's data; set it to about
        a third of your objects' smallest move."""
        if self.selection_scale != -1:
            return float(self.selection_scale)
        if self.data.name == "npz":
            return 1.0
        return self.data.step / 3.0

    @property
    def state_dim(self) -> int:
        """Size of a slot state h = (2-D position, appearance features)."""
        return 2 + self.slot_dim

    @classmethod
    def preset(cls, name: str, **overrides) -> "VIMConfig":
        if name == "cpu":
            base: Dict[str, Any] = {}
        elif name == "paper":
            base = dict(
                num_modules=5, slot_dim=64, encoder_channels=64, encoder_kernel=5,
                encoder_layers=4, decoder_channels=64, decoder_kernel=5, decoder_layers=3,
                module_hidden=128, update_hidden=64, keyquery_dim=64, batch_size=32,
                lr=4e-4, steps=100_000, warmup_steps=10_000, pretrain_steps=20_000,
                pretrain_lr=4e-4, seq_len_start=6, seq_len_max=20, seq_len_increment=2,
                seq_len_every=5_000, z_kl_anneal_steps=20_000, eval_every=2_000,
                eval_seq_len=20)
        else:
            raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
        base.update(_migrate(overrides))
        return cls(**base)

    def replace(self, **changes) -> "VIMConfig":
        """A copy with ``changes`` (validated); ``data`` may be a dict of data fields to change."""
        changes = _migrate(changes)
        data = changes.pop("data", None)
        if isinstance(data, dict):
            data = dataclasses.replace(self.data, **_check_data_keys(data))
        return dataclasses.replace(self, data=copy.deepcopy(data or self.data), **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "VIMConfig":
        """Inverse of :meth:`to_dict`; also reads configs written before the ``data`` section
        (top-level ``dataset`` and ``num_objects``)."""
        if not isinstance(d, dict):
            raise TypeError(f"VIMConfig.from_dict expects a dict, got {type(d).__name__}")
        d = _migrate(d)
        for name, value in _BEFORE_FIELD.items():
            d.setdefault(name, value)        # a config saved before the field existed
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown VIMConfig fields: {unknown}")
        return cls(**d)

    def seq_len_at(self, step: int) -> int:
        """Length curriculum (Appendix A.2): +increment frames every ``seq_len_every`` steps."""
        grown = self.seq_len_start + self.seq_len_increment * (step // self.seq_len_every)
        return int(min(self.seq_len_max, grown))

    def z_kl_weight_at(self, step: int) -> float:
        """Linear annealing of the Gaussian-KL weight (applied with ``poutine.scale``)."""
        if self.z_kl_anneal_steps == 0:
            return float(self.z_kl_weight_end)
        frac = min(1.0, step / self.z_kl_anneal_steps)
        start, end = self.z_kl_weight_start, self.z_kl_weight_end
        return float(start + frac * (end - start))



def _accept_legacy_keywords(init):
    """``VIMConfig(dataset=..., num_objects=...)``, as before the ``data`` section, still works."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **_migrate(kwargs))
    return __init__


VIMConfig.__init__ = _accept_legacy_keywords(VIMConfig.__init__)


def _check_data_keys(d: Dict[str, Any]) -> Dict[str, Any]:
    names = {f.name for f in dataclasses.fields(DataConfig)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown VIMConfig.data fields: {unknown} (known: {sorted(names)})")
    return d


def _data_from_dict(d: Dict[str, Any]) -> DataConfig:
    return DataConfig(**_check_data_keys(dict(d)))


def _migrate(d: Dict[str, Any]) -> Dict[str, Any]:
    """Move the legacy top-level ``dataset``/``num_objects`` keys into ``data``."""
    if not any(k in d for k in _LEGACY_DATA_KEYS):
        return dict(d)
    d = dict(d)
    data = d.get("data", {})
    data = dataclasses.asdict(data) if isinstance(data, DataConfig) else dict(data)
    for old, new in _LEGACY_DATA_KEYS.items():
        if old in d:
            data[new] = d.pop(old)
    d["data"] = data
    return d
