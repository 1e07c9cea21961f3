"""The paper's experiments as data: what to train, which variants, which seeds.

Each :class:`Experiment` names the result it reproduces and builds one config per (variant,
seed): the preset, the experiment's settings, the variant's, then the user's ``key=value``
overrides (:mod:`pyro_vim.overrides`) and the seed.  :mod:`pyro_vim.run` trains and evaluates
them; :mod:`pyro_vim.report` aggregates them.

* ``random_walk`` (Figs. 2, 5 and 7): rule identification on Random Walk, cpu preset, 5 seeds;
  the trained models are also tested with 8 iterations (VIM-8) on compositions of 1-5 moves and
  on transferring the dynamics of unseen objects (OOD shapes, colours, sizes) to known ones.
* ``module_count`` (Fig. 3): M in {1, 2, 3, 4, 5, 8}, with module widths chosen so that every M
  has the same transition-parameter count as the cpu preset's M = 4 (within 5%).
* ``vim2_compositions`` (Fig. 6): VIM-2 (M = 5) trained on 2-move compositions, tested on
  atomic moves; trained with ``straight_through`` (the candidates mixed by the hard choice)
  and ``iteration_prior="start"`` (both choices of a transition drawn from p(r | h_{t-1})).
* ``table1`` (Table 1): RIM and SCOFF (:mod:`pyro_vim.baselines`, teacher-forced next-frame
  predictors) against VIM and the monolithic VIM (one module, M = 5's transition-parameter
  count) on Random Walk, K = 4 slots/object files, M = 5 modules/schemata; each family trained
  by the same three rules, the variant's suffix: ``@15min`` and ``@60min`` of training time
  (``time_budget_s``) and ``@converged`` (``stop="plateau"``: until the held-out one-step
  validation error improved by less than 1% over the last third of the run, capped at 3 hours;
  :mod:`pyro_vim.train.stopping`), e.g. ``--variants rim@60min``.  Each run is scored by the
  Table 1 reconstruction error over 5-frame sequences (:mod:`pyro_vim.baselines.table1`); the
  report draws the validation error's learning curves.  Every variant gets the preset's
  ``pretrain_steps`` of single-frame pre-training inside its budget.
* ``ablations``: the marked place of every option that is not the default: the key-query
  module-selection prior vs a uniform prior, the slot-attention guide (default) vs the paper's
  plain key-query guide, the analytic categorical module KL (default) vs Trace_ELBO's Monte
  Carlo estimate on relaxed samples, the prior's octave position features (default) vs raw
  positions, the occlusion tracking policy (default) vs the paper's, the duplicate-merge step
  (default) vs none, and all parts at the paper's choice (``PAPER_PARTS``).
* ``gswm`` (Sec. 5.2, Fig. 4): the compact G-SWM baseline (:mod:`pyro_vim.baselines.gswm`,
  the paper's discovery, presence, rejection and interaction on by default; its settings in
  ``config.extra``) trained on atomic Random Walk at the cpu preset's sizes, seeds 0-2; its
  held-out metrics are its own (reconstruction, MED, mask tracking error) and the "med"
  evaluation scores G-SWM's MED on Compositional Random Walk (1-5 moves per frame) with one
  propagation step between frames and with 8 (multi-step G-SWM).
* ``interactions`` (beyond the paper, docs/interactions.md): bouncing balls (3 balls), a
  velocity in the slot state, with B = 1 binary module (``binary``) or none (``unary``, the
  same code and budget), K = 6 slots so that the same models are also tested on 5 balls; 30
  training minutes a run (``time_budget_s``); scored by the "interactions" evaluation.

``module_count`` and ``ablations`` train on the cpu preset with a shorter schedule
(:data:`SHORT_SCHEDULE`: 300 pre-training + 300 dynamics steps, about 9 minutes a run on one
core) so that their 18 and 24 runs fit a working day on two cores; ``--set pretrain_steps=400
steps=800`` restores the preset's full schedule.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

from .config import PAPER_PARTS, PLATEAU_CAP_S, VIMConfig
from .overrides import apply_overrides, parse_overrides

__all__ = ["Experiment", "EXPERIMENTS", "get_experiment", "transition_parameters",
           "module_hidden_for"]


#: Pre-training and dynamics steps of the sweeps with many runs (cpu preset otherwise).
SHORT_SCHEDULE = {"pretrain_steps": 300, "steps": 300}

#: Table 1: steps are no limit; each variant's budget (:data:`TABLE1_BUDGETS`) ends the run.  The
#: budget includes the ``pretrain_steps`` of single-frame perception pre-training, which RIM and
#: SCOFF get as VIM does since 2026-12-07 (they read a frame once and reconstruct it).
TABLE1_SETTINGS = {"num_modules": 5, "steps": 1_000_000}

#: Table 1's training rules, one per variant suffix (``rim@15min``, ...): equal wall-clock
#: budgets of 15 and 60 minutes of training, and "converged": until the held-out validation error
#: improved by less than 1% over the last third of the run (``stop="plateau"``), capped at 3 hours
#: (:mod:`pyro_vim.train.stopping`).  Every family gets the same rule.
TABLE1_BUDGETS = {"15min": {"stop": "budget", "time_budget_s": 900.0},
                  "60min": {"stop": "budget", "time_budget_s": 3600.0},
                  "converged": {"stop": "plateau", "time_budget_s": PLATEAU_CAP_S}}

#: Table 1's families (the variant's prefix): RIM, SCOFF, VIM with one monolithic module of the
#: transition-parameter count of M = 5 (``vim_m1``), and VIM (M = 5).
TABLE1_FAMILIES = ("rim", "scoff", "vim_m1", "vim")


#: The G-SWM baseline's settings over the cpu preset: no pre-training phase (G-SWM trains its
#: discovery with the rest) and the wall-clock budget of a cpu-preset VIM run (its 400 + 800
#: steps took 20.8-21.7 minutes of training on one core of the development machine, two runs
#: side by side, in the 5-seed ``random_walk`` sweep: 1300 s; steps are no limit); its KL
#: weight is ``extra["kl_weight_start"]`` (default 1: no annealing; VIM's z_kl_weight_* are
#: unused).  The official ball configs train 160k steps at lr 1e-4 with gradient clipping at 1.0
#: (zhixuan-lin/G-SWM, src/configs/balls_*.yaml); this budget gives a few thousand steps, hence
#: lr 1e-3.
GSWM_SETTINGS = {"model": "gswm", "pretrain_steps": 0, "steps": 1_000_000,
                 "time_budget_s": 1300.0, "warmup_steps": 50, "lr": 1e-3}


#: The interaction experiment's settings over the cpu preset (docs/interactions.md): bouncing
#: balls (3 balls of radius 3 at 2 px/frame, 32x32), a velocity in the slot state, M = 3 unary
#: modules, K = 6 slots (5 balls fit: the held-out test on 5 balls without retraining), 30
#: minutes of training on the development machine's cores (``time_budget_s``, pre-training
#: included; steps are no limit), videos growing from 6 to 12 frames.
INTERACTIONS_SETTINGS = {"data.name": "bouncing", "data.num_objects": 3, "data.radius": 3,
                         "data.speed": 2.0, "num_slots": 6, "num_modules": 3,
                         "interaction.velocity": True, "time_budget_s": 1800.0,
                         "steps": 1_000_000, "seq_len_start": 6, "seq_len_max": 12,
                         "seq_len_every": 1000}


def transition_parameters(num_modules: int, slot_dim: int, hidden: int) -> int:
    """Parameter count of :class:`~pyro_vim.nn.TransitionModules` (3-layer MLP per module on
    h = (pos, feat), plus the shared LayerNorm)."""
    d = 2 + slot_dim
    per_module = d * hidden + hidden + hidden * hidden + hidden + hidden * d + d
    return num_modules * per_module + 2 * slot_dim


def module_hidden_for(num_modules: int, reference: VIMConfig) -> int:
    """The module width that gives ``num_modules`` modules the transition-parameter count of
    ``reference`` (its ``num_modules`` x ``module_hidden``), rounded to the closest count."""
    target = transition_parameters(reference.num_modules, reference.slot_dim,
                                   reference.module_hidden)
    d = 2 + reference.slot_dim
    per = (target - 2 * reference.slot_dim) / num_modules
    # hidden^2 + (2d + 2) hidden + d = per
    b = 2 * d + 2
    h = (-b + math.sqrt(b * b - 4 * (d - per))) / 2
    candidates = [max(1, math.floor(h)), max(1, math.ceil(h))]
    return min(candidates, key=lambda x: abs(
        transition_parameters(num_modules, reference.slot_dim, x) - target))


@dataclass
class Experiment:
    name: str
    paper: str                               # the figure/table it reproduces
    description: str
    settings: Dict[str, Any] = field(default_factory=dict)     # over the preset
    variants: Dict[str, Dict[str, Any]] = field(default_factory=lambda: {"": {}})
    seeds: Tuple[int, ...] = (0, 1, 2)
    preset: str = "cpu"
    #: extra held-out evaluations of the trained model (see pyro_vim.run): "composition" =
    #: VIM-8 on Compositional Random Walk (Fig. 5); "transfer" = rules recognised on unseen
    #: objects replayed on known ones (Fig. 7); "table1" = reconstruction error over 5-frame
    #: sequences (Table 1, any model family)
    evaluations: Tuple[str, ...] = ()
    #: "med" = G-SWM's MED on Compositional Random Walk, single-step and multi-step (8
    #: iterations between frames; Sec. 5.2 / Fig. 4)
    #: data changes for the held-out test (e.g. train on compositions, test on atomic moves)
    eval_data: Dict[str, Any] = field(default_factory=dict)

    def config(self, variant: str, seed: int, overrides: Sequence[str] = ()) -> VIMConfig:
        """The config of one run: preset, experiment settings, variant, user overrides, seed.

        A variant whose value is a callable ``f(config) -> dict`` is evaluated on the config
        after the user's overrides (e.g. module widths that keep a parameter count)."""
        if variant not in self.variants:
            raise ValueError(f"experiment {self.name!r} has no variant {variant!r}; variants: "
                             f"{list(self.variants)}")
        base = apply_overrides(VIMConfig.preset(self.preset), self.settings)
        base = apply_overrides(base, list(overrides))
        changes = self.variants[variant]
        if callable(changes):
            changes = changes(base)
        # the variant's keys define the sweep, so they win over the user's overrides
        config = apply_overrides(base, changes).replace(seed=int(seed))
        if config.data.name == "npz":      # recorded videos: image size and pixel scales
            from .data.scales import apply_data_scales
            explicit = [*self.settings, *parse_overrides(list(overrides)), *changes]
            try:
                config = apply_data_scales(config, explicit)[0]
            except FileNotFoundError as e:     # a bad data.path is a bad setting
                raise ValueError(str(e)) from None
        return config

    def ground_truth_needed(self) -> str:
        """Why this experiment cannot run on recorded videos without ground truth ("" when it
        can: it trains and scores held-out frames, with rule identification only where the
        shards carry the true moves)."""
        reasons = [GROUND_TRUTH_EVALUATIONS[e] for e in self.evaluations
                   if e in GROUND_TRUTH_EVALUATIONS]
        if self.eval_data:
            reasons.append(f"its held-out test generates other videos ({self.eval_data}) and "
                           "scores them against their true moves")
        return "; ".join(reasons)


#: The evaluations that generate their own test videos and score them against the true moves
#: or positions (why an experiment with them cannot run on recorded videos, ``data.name=npz``).
GROUND_TRUTH_EVALUATIONS = {
    "composition": "VIM-8 is tested on generated Compositional Random Walk videos against "
                   "their true moves (Fig. 5)",
    "transfer": "the true moves of generated unseen objects are replayed on known ones "
                "(Fig. 7)",
    "interactions": "rollouts, collision attribution and free-vs-wall identification are "
                    "scored against the true positions, collisions and wall bounces of "
                    "generated bouncing balls",
    "med": "MED (G-SWM's measure) compares tracked positions with the true ones on generated "
           "Compositional Random Walk videos",
}


def _table1_variant(family: str, budget: str):
    rule = TABLE1_BUDGETS[budget]
    if family != "vim_m1":
        return {"model": family, **rule}

    def changes(base: VIMConfig) -> Dict[str, Any]:       # M = 1 at M = 5's parameter count
        return {"model": "vim", "num_modules": 1,
                "module_hidden": module_hidden_for(1, base.replace(num_modules=5)), **rule}
    changes.__name__ = f"{family}@{budget}"
    return changes


def table1_family(variant: str) -> str:
    """The family of a ``table1`` variant (``"vim_m1@60min"`` -> ``"vim_m1"``)."""
    return variant.split("@", 1)[0]


def _module_count_variant(m: int):
    def changes(base: VIMConfig) -> Dict[str, Any]:
        reference = base.replace(num_modules=4)
        return {"num_modules": m, "module_hidden": module_hidden_for(m, reference)}
    changes.__name__ = f"num_modules={m}"
    return changes


EXPERIMENTS: Dict[str, Experiment] = {e.name: e for e in [
    Experiment(
        "random_walk", "Fig. 2",
        "Random Walk: the M=4 modules identify the four move rules (rule-module accuracy, "
        "NMI, module step error, rollouts, prior calibration), with the before-learning "
        "baseline (trained perception, untrained modules); the same models tested on "
        "Compositional Random Walk (1-5 moves per frame) with 8 iterations (Fig. 5) and on "
        "dynamics transfer from unseen objects (Fig. 7).",
        seeds=(0, 1, 2, 3, 4), evaluations=("composition", "transfer", "med")),
    Experiment(
        "module_count", "Fig. 3",
        "Number of modules M in {1, 2, 3, 4, 5, 8} at an equal transition-parameter count: "
        "held-out MSE and KL averaged over 10 steps, rule x module usage maps.",
        settings=dict(SHORT_SCHEDULE),
        variants={f"num_modules={m}": _module_count_variant(m) for m in (1, 2, 3, 4, 5, 8)}),
    Experiment(
        "vim2_compositions", "Fig. 6",
        "VIM-2 with M=5 trained on Compositional Random Walk with exactly 2 moves per frame "
        "(atomic moves never seen alone), tested on atomic Random Walk: rule x module "
        "histogram, rule-module accuracy, the spare module's usage. Trained with the "
        "straight-through hard choice: with the relaxed mix, a choice split between two "
        "modules blends them into a diagonal, and 2 of 3 seeds learned diagonal modules. "
        "Both choices of a transition share the prior p(r | h_{t-1}) (iteration_prior="
        "'start'): with a prior per iteration, 2 of 5 seeds learned four diagonals and an "
        "identity, which that prior explains as cheaply as the atomic moves.",
        settings={"num_modules": 5, "iterations": 2, "data.name": "compositional",
                  "data.min_moves": 2, "data.max_moves": 2, "straight_through": True,
                  "iteration_prior": "start"},
        eval_data={"name": "random_walk"}),
    Experiment(
        "ablations", "Secs. 3.1-3.2 (ablations)",
        "Module-selection prior (key-query, the paper's, vs uniform), guide (slot attention "
        "with the position score, the default, vs the paper's plain key-query selection), the "
        "module-choice KL (analytic between the categorical choices, the default, vs the Monte "
        "Carlo estimate on relaxed samples) and the prior's position input (octave features, "
        "the default, vs raw coordinates), the guide's tracking policy (occlusion, the default, "
        "vs the paper's slot attention alone) and the trainer's merge step (duplicates, the "
        "default, vs none), each changed alone from the default; and every part at the "
        "paper's choice at once (PAPER_PARTS).",
        settings=dict(SHORT_SCHEDULE),
        variants={"default": {}, "prior=uniform": {"prior": "uniform"},
                  "guide=keyquery": {"guide": "keyquery"},
                  "r_kl=sample": {"r_kl": "sample"},
                  "prior_octaves=0": {"prior_octaves": 0},
                  "tracking=paper": {"tracking": "paper"},
                  "merge=none": {"merge": "none"},
                  "paper_parts": dict(PAPER_PARTS)}),
    Experiment(
        "table1", "Table 1",
        "RIM and SCOFF (deterministic, teacher-forced next-frame predictors) vs VIM and the "
        "monolithic VIM (vim_m1: one module of M=5's parameter count) on Random Walk: 4 "
        "slots/object files, 5 modules/schemata; every family trained 15 and 60 minutes "
        "(@15min, @60min) and until its held-out one-step validation error improved by less "
        "than 1% over the last third of the run, at most 3 hours (@converged); "
        "reconstruction squared error per frame over 5-frame sequences (frames 1-4): "
        "RIM/SCOFF predicting each frame from the true previous ones, VIM by its inference "
        "network and one step ahead from its prior; learning curves of the validation error.",
        settings=dict(TABLE1_SETTINGS),
        variants={f"{family}@{budget}": _table1_variant(family, budget)
                  for family in TABLE1_FAMILIES for budget in TABLE1_BUDGETS},
        evaluations=("table1",)),
    Experiment(
        "gswm", "Sec. 5.2, Fig. 4 (G-SWM baseline)",
        "Compact G-SWM (Lin et al. 2020: per-object presence/where/what latents, one "
        "monolithic propagation with z_dyna, per-object LSTMs and a relational term over the "
        "other objects, per-step presence, discovery on every frame with dropout and "
        "rejection of duplicates, depth compositing over a constant background) trained "
        "on atomic Random Walk at the cpu preset's sizes (no slot-attention pre-training); "
        "held-out reconstruction, MED and mask tracking error, and MED on Compositional Random "
        "Walk (1-5 moves per frame) single-step and multi-step (8 propagation iterations "
        "between two frames).",
        settings=dict(GSWM_SETTINGS), evaluations=("med",)),
    Experiment(
        "glyphs", "beyond the paper (perception without colour)",
        "Same-coloured glyphs: three 8x8 white stroke glyphs on black, 2 px moves, starting "
        "anywhere (apart, touching or overlapping), so that perception cannot separate the "
        "objects by their colour: rule-module accuracy, module step error, the slots' distance "
        "to their objects' centres and rollouts, with the before-learning baseline.",
        settings={"data.name": "glyphs", "data.step": 2, "data.min_separation": None,
                  "data.max_separation": None}),
    Experiment(
        "interactions", "beyond the paper (n-ary modules)",
        "Bouncing balls (3 balls, 32x32, K=6 slots, velocity in the slot state, M=3 unary "
        "modules, 30 training minutes a run): binary = B=1 binary module with a partner site, "
        "unary = no binary module (same code and budget). Scored by rollout error from the "
        "prior after 1/5/10/20 frames (mean and best of 8, all videos and those with a "
        "collision), collision attribution (precision/recall within +-1 frame), free-vs-wall "
        "identification among the unary modules, the constant-velocity and walls-only "
        "physics baselines, and the same rollouts on 5 balls without retraining.",
        settings=dict(INTERACTIONS_SETTINGS),
        variants={"binary": {"interaction.num_binary_modules": 1},
                  "unary": {"interaction.num_binary_modules": 0}},
        evaluations=("interactions",)),
]}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; experiments: {sorted(EXPERIMENTS)} "
                         "(python -m pyro_vim.run --list)")
    return EXPERIMENTS[name]


def describe() -> List[str]:
    lines = []
    for e in EXPERIMENTS.values():
        variants = ", ".join(v for v in e.variants if v) or "—"
        lines.append(f"{e.name:16s} {e.paper:20s} seeds {','.join(map(str, e.seeds))}; "
                     f"variants: {variants}\n{'':16s} {e.description}")
    return lines
