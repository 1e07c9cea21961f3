"""One object describes an experiment: :class:`VIMConfig`, its sections and its presets.

A config is in sections, each a small dataclass: ``architecture`` (sizes of the networks and of
the probabilistic model), ``perception`` (slot-attention discovery and the guide's tracking
policy), ``inference`` (the module-selection posterior and how choices mix), ``schedule``
(optimisation, curriculum, annealing, the trainer's duplicate-merge step, evaluation),
``interaction`` (velocities and binary modules for interacting objects, beyond the paper; off by
default) and ``data`` (the generator).  At the top are the parts chosen by name (``model``,
``prior``, ``guide``), the frame size, the seed and the config's ``version``.  Every field of a
section is also readable and settable under its own name (``config.num_slots`` is
``config.architecture.num_slots``; ``--set num_slots=5`` and ``--set architecture.num_slots=5``
are the same), so scripts written against the flat config keep working.

Saved configs carry :data:`CONFIG_VERSION`; :mod:`pyro_vim.migrations` turns every earlier
version into the current one.  A partial dict gets today's defaults
(``VIMConfig.from_dict({}) == VIMConfig()``).

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
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from . import registry
from .nn.slot_attention import BACKGROUND_COLOURS, SLOT_INITS

PRESETS = ("cpu", "paper")
DATASETS = ("random_walk", "compositional", "ood", "glyphs", "bouncing", "npz")
#: Top-level keys of configs written before the ``data`` section existed, and where they went.
_LEGACY_DATA_KEYS = {"dataset": "name", "num_objects": "num_objects"}
#: The version of the config format written today (see :mod:`pyro_vim.migrations`).
CONFIG_VERSION = 2
#: When training ends (``schedule.stop``): "budget" at ``steps`` or ``time_budget_s``, whichever
#: comes first (every config saved before the field existed); "plateau" also when the held-out
#: validation error stops improving (:mod:`pyro_vim.train.stopping`), capped at ``time_budget_s``.
STOP_RULES = ("budget", "plateau")
#: The training-time cap of ``stop="plateau"`` when ``time_budget_s`` is 0: 3 hours.
PLATEAU_CAP_S = 10800.0


@dataclass
class DataConfig:
    """The data generator of an experiment (:func:`pyro_vim.data.make_dataset` arguments).

    The frames' side is the top-level ``VIMConfig.image_size`` (model and data share it).
    ``radius`` and ``colors`` are the balls' (``random_walk``, ``compositional``,
    ``bouncing``); ``ood`` objects take their own sizes and palette.  ``step`` is the random
    walks' move in pixels, ``speed`` the bouncing balls' pixels per frame (each generator takes
    only its own).  ``min_moves``/``max_moves`` are the compositional data's number of atomic
    moves between two frames.  ``glyphs`` (same-coloured stroke glyphs,
    :class:`~pyro_vim.data.GlyphRandomWalk`) reads ``object_size`` (the side of a glyph's box),
    ``colors`` (one colour, default white), ``min_separation`` / ``max_separation`` (how far
    apart objects start; None: unconstrained) and ``glyph_seed`` (which glyphs); every field has
    one default for all generators, so the recording the glyphs were made for is
    ``--set data.name=glyphs data.step=2``.  ``name = "npz"`` trains on
    recorded videos: ``path`` is a directory of ``.npz`` shards (:mod:`pyro_vim.data.shards`);
    the generator fields are then unused.
    """
    name: str = "random_walk"
    num_objects: int = 3
    step: int = 3
    speed: float = 2.0                     # name = "bouncing": pixels per frame
    radius: int = 3
    colors: Optional[List[List[float]]] = None
    min_moves: int = 1
    max_moves: int = 5
    background: Optional[Union[str, List[float]]] = None   # None (black), RGB, or "texture"
    texture_seed: int = 0
    path: Optional[str] = None             # name = "npz": the directory of .npz shards
    object_size: int = 8                   # glyphs: side of a glyph's box, px (>= 3)
    min_separation: Optional[int] = 1      # glyphs: first-frame gap between boxes, px
    max_separation: Optional[int] = None   # glyphs: each starts this near an earlier one
    glyph_seed: int = 0                    # glyphs: seed of the glyph bank

    def validate(self) -> "DataConfig":
        if self.name not in DATASETS:
            raise ValueError(f"VIMConfig.data.name must be one of {DATASETS}, got {self.name!r}")
        for name in ("num_objects", "step", "radius", "min_moves", "max_moves"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"VIMConfig.data.{name} must be a positive int, got {value!r}")
        speed = self.speed
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) \
                or not 0 < speed < math.inf:
            raise ValueError(f"VIMConfig.data.speed must be a positive finite number, got "
                             f"{speed!r}")
        self.speed = float(speed)
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
        if isinstance(self.object_size, bool) or not isinstance(self.object_size, int) \
                or self.object_size < 3:
            raise ValueError(f"VIMConfig.data.object_size must be an int >= 3 (pixels), got "
                             f"{self.object_size!r}")
        for name in ("min_separation", "max_separation"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < -self.object_size):
                raise ValueError(f"VIMConfig.data.{name} must be None or an int >= "
                                 f"-object_size ({-self.object_size}), got {value!r}")
        if None not in (self.min_separation, self.max_separation) \
                and self.max_separation < self.min_separation:
            raise ValueError(f"VIMConfig.data.max_separation ({self.max_separation}) must be >= "
                             f"data.min_separation ({self.min_separation}); for objects that "
                             "start touching set data.min_separation=none too")
        if isinstance(self.glyph_seed, bool) or not isinstance(self.glyph_seed, int) \
                or self.glyph_seed < 0:
            raise ValueError(f"VIMConfig.data.glyph_seed must be a non-negative int, got "
                             f"{self.glyph_seed!r}")
        if self.name == "glyphs" and self.colors is not None and len(self.colors) != 1:
            raise ValueError(f"VIMConfig.data.colors: glyphs share one colour, give one RGB "
                             f"triple (e.g. [[1, 1, 1]]), got {len(self.colors)}")
        if self.name == "npz" and (not isinstance(self.path, str) or not self.path):
            raise ValueError("VIMConfig.data.name='npz' needs data.path, a directory of .npz "
                             f"shards; got data.path={self.path!r}")
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"VIMConfig.data.path must be a string, got {self.path!r}")
        return self

    def generator_kwargs(self, image_size: int) -> Dict[str, Any]:
        """Keyword arguments of the generator class named by ``name``."""
        kwargs: Dict[str, Any] = dict(num_objects=self.num_objects, image_size=image_size,
                                      background=self.background,
                                      texture_seed=self.texture_seed)
        if self.name == "bouncing":
            kwargs.update(speed=self.speed)
        else:
            kwargs.update(step=self.step)
        if self.name in ("random_walk", "compositional", "bouncing"):
            kwargs.update(radius=self.radius, colors=self.colors)
        if self.name == "compositional":
            kwargs.update(min_moves=self.min_moves, max_moves=self.max_moves)
        if self.name == "glyphs":
            kwargs.update(object_size=self.object_size, colors=self.colors,
                          min_separation=self.min_separation,
                          max_separation=self.max_separation, glyph_seed=self.glyph_seed)
        return kwargs


def _positive_ints(section, names):
    for name in names:
        value = getattr(section, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"VIMConfig.{name} must be a positive int, got {value!r}")


def _non_negative_ints(section, names):
    for name in names:
        value = getattr(section, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"VIMConfig.{name} must be a non-negative int, got {value!r}")


def _numbers(section, names, low_open: bool):
    for name in names:
        value = getattr(section, name)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (
            (0 < value < math.inf) if low_open else (0 <= value < math.inf))
        if not ok:
            kind = "positive" if low_open else "non-negative"
            raise ValueError(f"VIMConfig.{name} must be a {kind} finite number, got {value!r}")


def _bools(section, names):
    for name in names:
        if not isinstance(getattr(section, name), bool):
            raise ValueError(f"VIMConfig.{name} must be a bool, got {getattr(section, name)!r}")


def _choice(section, name, options):
    if getattr(section, name) not in options:
        raise ValueError(f"VIMConfig.{name} must be one of {tuple(options)}, "
                         f"got {getattr(section, name)!r}")


@dataclass
class ArchitectureConfig:
    """Sizes of the networks (Appendix A) and the constants of the probabilistic model."""
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
    module_init_scale: float = 1.0  # initial module translation, in pixels (near the identity)
    iterations: int = 1         # k of VIM-k: module selections/updates between two frames
    iteration_prior: str = "start"  # VIM-k's selection prior: "start" (every iteration's
    #                             p(r | h_{t-1}): the k choices i.i.d. given h_{t-1}) or
    #                             "current" (iteration i's p(r | the state after iteration i-1))
    prior_octaves: int = -1     # octave features of positions in the selection prior: -1 derives
    #                             them from image_size (finest period <= 4 px), 0 = raw positions
    temperature: float = 1.0    # relaxed one-hot temperature (A.1: fixed at 1)
    sigma_x: float = 0.1        # std of each pixel's Gaussian mixture components
    z0_scale: float = 0.02      # std of the discovery posterior/prior p(z_0 | c)
    z_pos_scale: float = 0.5    # pixels: std of the prior on the position part of z_t

    def validate(self) -> "ArchitectureConfig":
        _positive_ints(self, ("num_slots", "num_modules", "slot_dim", "encoder_channels",
                              "encoder_kernel", "encoder_layers", "decoder_channels",
                              "decoder_kernel", "decoder_layers", "module_hidden",
                              "update_hidden", "keyquery_dim", "iterations"))
        _numbers(self, ("temperature", "sigma_x", "z0_scale", "z_pos_scale"), low_open=True)
        _numbers(self, ("module_init_scale", "mask_extent"), low_open=False)
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
        _choice(self, "iteration_prior", ("current", "start"))
        if self.decoder_kernel % 2 == 0 or self.encoder_kernel % 2 == 0:
            raise ValueError("VIMConfig.encoder_kernel and decoder_kernel must be odd")
        return self


@dataclass
class PerceptionConfig:
    """Slot-attention discovery p(z_0 | c) and the guide's tracking policy (a named part,
    :mod:`pyro_vim.tracking`).  ``hold_hidden``, ``reseed`` and ``reseed_median`` are the
    options of the ``"occlusion"`` policy; the paper's policy (``tracking="paper"``) has none."""
    discovery_iters: int = 3    # slot-attention iterations on the context frame
    colour_sigma: float = 0.15  # initial colour bandwidth of the slot-attention k-means term
    slot_init: str = "seeded"   # discovery start: "seeded" on the frame or "learned" per slot
    background_colour: str = "learned"  # the seeded background slot's starting colour:
    #                             "learned" (a parameter) or "median" (each frame's median colour)
    track_iters: int = 1        # slot-attention steps from h_{t-1} onto frame t in the guide
    tracking: str = "occlusion"  # tracking policy: "occlusion" or "paper" (pyro_vim.tracking)
    hold_hidden: bool = True    # occlusion: a slot that wins almost no pixel keeps its
    #                             position/colour
    reseed: bool = True         # occlusion: a duplicated slot restarts on unexplained pixels
    reseed_median: bool = True  # occlusion: ... and so does an object slot holding the frame's
    #                             median colour (the background)

    def validate(self) -> "PerceptionConfig":
        _positive_ints(self, ("discovery_iters", "track_iters"))
        _numbers(self, ("colour_sigma",), low_open=True)
        _choice(self, "background_colour", BACKGROUND_COLOURS)
        _choice(self, "slot_init", SLOT_INITS)
        _bools(self, ("hold_hidden", "reseed", "reseed_median"))
        names = sorted(registry.TRACKING)
        if self.tracking not in names:
            raise ValueError(f"VIMConfig.tracking must be one of {names} (the registered "
                             f"tracking policies), got {self.tracking!r}")
        return self


@dataclass
class InferenceConfig:
    """The module-selection posterior and how module choices mix the candidates."""
    selection_scale: float = -1.0  # pixels: distance scale of the module-selection posterior;
    #                             -1 derives it from the data: a third of the generator's step
    #                             (1 px for 3 px moves), 1 px for recorded (npz) videos
    straight_through: bool = False  # mix candidates by the hard choice (forward) with the
    #                             relaxed sample's gradient (backward); False: the relaxed mix
    test_choices: str = "hard"  # how choices mix the candidates in eval mode: "hard" (the chosen
    #                             module only; A.1: "the hard version during testing") or
    #                             "relaxed" (as in training).  Training is unaffected.
    r_kl: str = "categorical"   # module-choice KL: "categorical" (analytic, between the choice
    #                             distributions) or "sample" (Trace_ELBO's relaxed Monte Carlo)

    def validate(self) -> "InferenceConfig":
        if not (self.selection_scale == -1 or (
                not isinstance(self.selection_scale, bool)
                and isinstance(self.selection_scale, (int, float))
                and 0 < self.selection_scale < math.inf)):
            raise ValueError(f"VIMConfig.selection_scale must be a positive finite number of "
                             f"pixels, or -1 (derived from the data's step), "
                             f"got {self.selection_scale!r}")
        _bools(self, ("straight_through",))
        _choice(self, "test_choices", ("hard", "relaxed"))
        _choice(self, "r_kl", ("sample", "categorical"))
        return self


@dataclass
class ScheduleConfig:
    """Optimisation (Appendix A.2): pre-training, curriculum, annealing, the trainer's
    duplicate-merge step (a named part, :mod:`pyro_vim.duplicates`), evaluation, budget and
    the stopping rule (``stop``, :mod:`pyro_vim.train.stopping`: "budget", as every config
    saved before it existed, or "plateau" of the held-out validation error)."""
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
    merge: str = "duplicates"   # the trainer's module-merge step: "duplicates" or "none"
    merge_every: int = 25       # dynamics steps between two duplicate checks (0: never)
    eval_every: int = 100
    eval_sequences: int = 32
    eval_seq_len: int = 10
    time_budget_s: float = 0.0  # training stops cleanly (checkpoint saved) after this many
    #                             seconds of training, summed over resumes (0: no budget; with
    #                             stop="plateau": the cap PLATEAU_CAP_S, 3 hours)
    stop: str = "budget"        # when training ends: "budget" (``steps`` or ``time_budget_s``,
    #                             whichever comes first) or "plateau" (also when the validation
    #                             error has plateaued: pyro_vim.train.stopping; needs eval_every)
    plateau_tolerance: float = 0.01  # stop="plateau": the relative improvement of the best
    #                             validation error of the last third of the evaluations over
    #                             the best before it below which training stops (1%)
    plateau_min_evals: int = 9  # stop="plateau": validation evaluations before the rule may stop

    @property
    def time_cap_s(self) -> float:
        """The training time after which training stops: ``time_budget_s``, or with
        ``stop="plateau"`` and no budget set, :data:`PLATEAU_CAP_S` (0: no limit)."""
        if self.time_budget_s or self.stop != "plateau":
            return float(self.time_budget_s)
        return PLATEAU_CAP_S

    def validate(self) -> "ScheduleConfig":
        _positive_ints(self, ("batch_size", "seq_len_start", "seq_len_max", "seq_len_every",
                              "eval_sequences"))
        _non_negative_ints(self, ("steps", "pretrain_steps", "warmup_steps", "z_kl_anneal_steps",
                                  "lr_half_life", "eval_every", "seq_len_increment"))
        _numbers(self, ("lr", "pretrain_lr", "clip_norm"), low_open=True)
        _numbers(self, ("z_kl_weight_start", "z_kl_weight_end"), low_open=False)
        if isinstance(self.eval_seq_len, bool) or not isinstance(self.eval_seq_len, int) \
                or self.eval_seq_len < 2:
            raise ValueError(f"VIMConfig.eval_seq_len must be an int >= 2, "
                             f"got {self.eval_seq_len!r}")
        if isinstance(self.merge_every, bool) or not isinstance(self.merge_every, int) \
                or self.merge_every < 0:
            raise ValueError(f"VIMConfig.merge_every must be an int >= 0 (dynamics steps "
                             f"between duplicate-module checks; 0, like merge='none': never), "
                             f"got {self.merge_every!r}")
        names = sorted(registry.MERGES)
        if self.merge not in names:
            raise ValueError(f"VIMConfig.merge must be one of {names} (the registered merge "
                             f"steps), got {self.merge!r}")
        _bools(self, ("freeze_perception",))
        _numbers(self, ("time_budget_s",), low_open=False)
        _choice(self, "stop", STOP_RULES)
        tol = self.plateau_tolerance
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < 1:
            raise ValueError(f"VIMConfig.plateau_tolerance must be a number in (0, 1) (a "
                             f"relative improvement: 0.01 is 1%), got {tol!r}")
        if isinstance(self.plateau_min_evals, bool) or not isinstance(self.plateau_min_evals,
                                                                      int) \
                or self.plateau_min_evals < 3:
            raise ValueError(f"VIMConfig.plateau_min_evals must be an int >= 3 (a third of the "
                             f"evaluations and the rest both hold one), got "
                             f"{self.plateau_min_evals!r}")
        if self.stop == "plateau" and not self.eval_every:
            raise ValueError("VIMConfig.stop='plateau' evaluates the validation error every "
                             "eval_every dynamics steps: eval_every must be positive, got 0")
        if self.seq_len_start < 2 or self.seq_len_max < self.seq_len_start:
            raise ValueError("VIMConfig needs 2 <= seq_len_start <= seq_len_max")
        return self


#: How ``r_{t}`` scores a binary module (:meth:`pyro_vim.interactions.Interactions.module_logits`).
PAIR_CHOICES = ("joint", "module_first")
#: How a binary module's weights on its partner input start (:class:`pyro_vim.nn.BinaryModules`).
PARTNER_INITS = ("random", "zero")


@dataclass
class InteractionConfig:
    """Interacting objects (docs/interactions.md, :mod:`pyro_vim.interactions`): beyond the
    paper, which uses unary modules only.  The defaults turn everything off: the paper's unary
    VIM, its sites and its numbers exactly.

    ``velocity``: the slot state carries a velocity, h = (pos, vel, feat); ``z_0``'s site covers
    it, inferred by p(z_0 | c) from the first *two* frames (discovery on frame 0, one tracking
    step onto frame 1, velocity = the displacement), and the modules map (pos, vel, feat) to
    (dpos, dvel, dfeat) around inertial flight.  ``num_binary_modules`` B > 0: B binary modules,
    each chosen by a slot together with a partner slot (site ``p_{t}``: one of the other K - 1
    slots or "none")."""
    num_binary_modules: int = 0  # B: modules of (own state, partner state) -> update
    velocity: bool = False       # slot state (pos, vel, feat), context = the first two frames
    pair_choice: str = "joint"   # "joint": softmax over all (module, partner) pairs;
    #                              "module_first": a module at equal odds, then its partner
    partner_init: str = "random"  # "zero": binary modules start blind to the partner

    def validate(self) -> "InteractionConfig":
        _non_negative_ints(self, ("num_binary_modules",))
        _bools(self, ("velocity",))
        if self.pair_choice not in PAIR_CHOICES:
            raise ValueError(f"VIMConfig.interaction.pair_choice must be one of {PAIR_CHOICES}, "
                             f"got {self.pair_choice!r}")
        if self.partner_init not in PARTNER_INITS:
            raise ValueError(f"VIMConfig.interaction.partner_init must be one of "
                             f"{PARTNER_INITS}, got {self.partner_init!r}")
        return self

    @property
    def enabled(self) -> bool:
        return self.velocity or self.num_binary_modules > 0


#: Every named part at the paper's choice: its key-query prior and key-query selection
#: posterior, Eq. 4's tracking by slot attention alone, no merge step, and Trace_ELBO's relaxed
#: Monte Carlo module-choice term.  ``VIMConfig(**PAPER_PARTS)`` is the paper's program
#: (tests/test_paper_program.py); the defaults add the mechanisms measured in BENCHMARKS.md.
PAPER_PARTS = {"prior": "keyquery", "guide": "keyquery", "tracking": "paper", "merge": "none",
               "r_kl": "sample", "straight_through": False, "test_choices": "hard"}
#: The sections of a config, in the order they are written.
SECTIONS = {"architecture": ArchitectureConfig, "perception": PerceptionConfig,
            "inference": InferenceConfig, "schedule": ScheduleConfig,
            "interaction": InteractionConfig}
#: Every section field's flat name -> its section (``config.num_slots`` reads
#: ``config.architecture.num_slots``).
FLAT_NAMES = {f.name: section for section, cls in SECTIONS.items()
              for f in dataclasses.fields(cls)}


@dataclass
class VIMConfig:
    """One experiment: the parts chosen by name, the frame size, the seed and the sections.

    ``VIMConfig(num_slots=5, data={"step": 2})`` and ``VIMConfig(architecture={"num_slots": 5})``
    build the same config; every section field is an attribute of the config too."""
    version: int = CONFIG_VERSION
    # -- what is built: model family and its swappable parts (chosen by name) ---------------
    model: str = "vim"
    prior: str = "keyquery"          # module-selection prior: "keyquery" | "uniform"
    guide: str = "slot_attention"    # variational guide: "slot_attention" | "keyquery"
    image_size: int = 32
    seed: int = 0
    architecture: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    interaction: InteractionConfig = field(default_factory=InteractionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    extra: Dict[str, Any] = field(default_factory=dict)   # settings of other model families

    def __post_init__(self):
        self.validate()

    def __getattr__(self, name: str):
        # only called when ordinary lookup fails: a section field under its flat name
        section = FLAT_NAMES.get(name)
        if section is None:
            raise AttributeError(f"'VIMConfig' object has no attribute {name!r}")
        try:
            return getattr(object.__getattribute__(self, section), name)
        except AttributeError:
            raise AttributeError(f"'VIMConfig' object has no attribute {name!r}") from None

    def __setattr__(self, name: str, value):
        section = FLAT_NAMES.get(name)
        if section is not None:
            setattr(getattr(self, section), name, value)
        else:
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------------
    def validate(self) -> "VIMConfig":
        for name, cls in (*SECTIONS.items(), ("data", DataConfig)):
            value = object.__getattribute__(self, name)
            if isinstance(value, dict):
                value = _section_from_dict(name, value)
                object.__setattr__(self, name, value)
            if not isinstance(value, cls):
                raise ValueError(f"VIMConfig.{name} must be a {cls.__name__} or a dict, got "
                                 f"{type(value).__name__}")
            value.validate()
        if self.version != CONFIG_VERSION:
            raise ValueError(f"VIMConfig.version must be {CONFIG_VERSION} (older versions are "
                             f"read by VIMConfig.from_dict), got {self.version!r}")
        for kind in ("model", "prior", "guide"):
            names = sorted(registry._TABLES[kind])
            if getattr(self, kind) not in names:
                raise ValueError(f"VIMConfig.{kind} must be one of {names} (the registered "
                                 f"{kind}s), got {getattr(self, kind)!r}")
        _positive_ints(self, ("image_size",))
        _non_negative_ints(self, ("seed",))
        if not isinstance(self.extra, dict):
            raise ValueError(f"VIMConfig.extra must be a dict, got {type(self.extra).__name__}")
        # a model family may write its settings in ``extra`` out in full (its defaults filled in
        # and checked): then a saved config says what was built (RIM/SCOFF, baselines/scoff.py)
        complete = getattr(registry._TABLES["model"][self.model], "complete_extra", None)
        if complete is not None:
            object.__setattr__(self, "extra", complete(dict(self.extra), self))
        if self.interaction.enabled and self.iterations != 1:
            raise ValueError(f"VIMConfig.interaction (velocity, num_binary_modules) needs one "
                             f"module selection per transition (iterations=1), got iterations="
                             f"{self.iterations}")
        if self.num_slots < self.data.num_objects:
            raise ValueError(
                f"VIMConfig.num_slots ({self.num_slots}) must be >= data.num_objects "
                f"({self.data.num_objects}): every object needs a slot")
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
        for -1 a third of the data's move (``data.step / 3``: 1 px for the paper's 3 px moves),
        so that the candidates of two different moves stay about three scales apart whatever the
        step (at 2 px moves and a 1 px scale the relaxed choice mixes in the wrong candidates
        and the modules overshoot, BENCHMARKS.md, "The selection scale"). Recorded videos
        (``data.name = "npz"``) declare no step: 1 px, as for the paper's data; set it to about
        a third of your objects' smallest move. Bouncing balls move ``data.speed`` pixels per
        frame: ``data.speed / 3``."""
        if self.selection_scale != -1:
            return float(self.selection_scale)
        if self.data.name == "npz":
            return 1.0
        if self.data.name == "bouncing":
            return self.data.speed / 3.0
        return self.data.step / 3.0

    @property
    def state_dim(self) -> int:
        """Size of a slot's (position, appearance features): ``infer``'s ``slots``."""
        return 2 + self.slot_dim

    @property
    def motion_dim(self) -> int:
        """Size of the motion part of a slot state: the position, and the velocity when
        ``interaction.velocity`` is on (2 or 4)."""
        return 4 if self.interaction.velocity else 2

    @property
    def latent_dim(self) -> int:
        """Size of a slot state h and of its sites ``z_0``, ``z_{t}``: (pos, feat), or (pos,
        vel, feat) with ``interaction.velocity``; ``state_dim`` when the feature is off."""
        return self.motion_dim + self.slot_dim

    @property
    def num_choices(self) -> int:
        """Categories of a module choice ``r_{t}``: the M unary modules, then the B binary
        ones (``interaction.num_binary_modules``)."""
        return self.num_modules + self.interaction.num_binary_modules

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
        """A validated copy with ``changes``: flat field names, or a section's name with a dict
        of that section's fields to change (``replace(data={"step": 4}, num_slots=5)``)."""
        d = self.to_dict()
        for key, value in _group(_migrate(changes)).items():
            if key in SECTIONS or key == "data":
                if isinstance(value, dict):
                    d[key].update(value)
                else:
                    d[key] = copy.deepcopy(value)
            else:
                d[key] = value
        return type(self)(**d)

    def to_dict(self) -> Dict[str, Any]:
        """The config as nested plain data (sections as dicts), with its ``version``."""
        return dataclasses.asdict(self)

    def flat_dict(self) -> Dict[str, Any]:
        """``{key: value}`` with dotted keys for the sections (``architecture.num_slots``)."""
        out: Dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if key in SECTIONS or key == "data":
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "VIMConfig":
        """Inverse of :meth:`to_dict`.  A dict with a ``version`` older than
        :data:`CONFIG_VERSION` is migrated (:func:`pyro_vim.migrations.migrate`); a dict without
        one is a config of today's version, partial or flat, and every field it lacks takes
        today's default.  A config saved before versions existed (a checkpoint or run folder of
        an earlier commit) is read with :meth:`from_saved`."""
        if not isinstance(d, dict):
            raise TypeError(f"VIMConfig.from_dict expects a dict, got {type(d).__name__}")
        from .migrations import migrate
        d = migrate(d) if "version" in d else dict(d)
        d.pop("version", None)
        known = {f.name for f in dataclasses.fields(cls)} | set(FLAT_NAMES) \
            | set(_LEGACY_DATA_KEYS)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown VIMConfig fields: {unknown}")
        return cls(**d)

    @classmethod
    def from_saved(cls, d: Dict[str, Any]) -> "VIMConfig":
        """A config that a checkpoint or run folder stored: without a ``version`` it was written
        before versions existed (version 1), and the fields it lacks take the values that
        reproduce what was trained then.  A model family with a ``saved_config(config,
        saved_extra)`` classmethod then gets the built config and the ``extra`` dict as saved, and
        returns the config of the model that was trained (RIM/SCOFF: the settings of configs
        saved before they were written out, :meth:`pyro_vim.baselines.SCOFF.saved_config`)."""
        if not isinstance(d, dict):
            raise TypeError(f"a saved config must be a dict, got {type(d).__name__}")
        if "version" not in d:
            d = {**d, "version": 1}
        config = cls.from_dict(d)
        saved = getattr(registry._TABLES["model"][config.model], "saved_config", None)
        if saved is None:
            return config
        extra = d.get("extra")
        return saved(config, dict(extra) if isinstance(extra, dict) else {})

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


_DATACLASS_INIT = VIMConfig.__init__


def _init(self, *args, **kwargs):
    """``VIMConfig(num_slots=5, dataset="ood")``: flat section fields and the legacy top-level
    ``dataset``/``num_objects`` keywords are sorted into their sections."""
    kwargs = _group(_migrate(kwargs))
    unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(VIMConfig)})
    if unknown:
        raise TypeError(f"unknown VIMConfig fields: {unknown} (python -m pyro_vim.run --keys "
                        "lists them)")
    _DATACLASS_INIT(self, *args, **kwargs)


VIMConfig.__init__ = _init


def _group(d: Dict[str, Any]) -> Dict[str, Any]:
    """Move flat section fields (``num_slots``) and dotted keys (``architecture.num_slots``,
    ``data.step``) into section dicts, merged with any section dict given."""
    out: Dict[str, Any] = {}
    sections: Dict[str, Dict[str, Any]] = {}
    for key, value in d.items():
        if "." in key:
            section, name = key.split(".", 1)
            if section not in SECTIONS and section != "data":
                raise ValueError(f"unknown VIMConfig section {section!r} in {key!r} "
                                 f"(sections: {sorted([*SECTIONS, 'data'])})")
            sections.setdefault(section, {})[name] = value
        elif key in FLAT_NAMES:
            sections.setdefault(FLAT_NAMES[key], {})[key] = value
        else:
            out[key] = value
    for section, fields_ in sections.items():
        given = out.get(section)
        if given is None:
            out[section] = fields_
        else:
            base = dataclasses.asdict(given) if dataclasses.is_dataclass(given) else dict(given)
            out[section] = {**base, **fields_}
    return out


def _section_from_dict(name: str, d: Dict[str, Any]):
    cls = DataConfig if name == "data" else SECTIONS[name]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown VIMConfig.{name} fields: {unknown} (known: {sorted(names)})")
    return cls(**d)


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
