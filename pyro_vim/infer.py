"""See what a VIM learned: sampled futures, counterfactual rollouts and module rollouts.

Everything here is built from Pyro's effect handlers around the public ``vim.model`` and
``vim.guide`` programs (sites ``z_0``, ``r_{t}``, ``z_{t}``, ``x``; see :mod:`pyro_vim.model`):

* :func:`predict` samples ``num_samples`` futures of ``horizon`` frames after some context frames:
  the guide is traced on the context (posterior samples of ``z_0`` and of the context's
  ``r_{t}``, ``z_{t}``), the model is replayed against that trace (``poutine.replay``) and runs
  ``horizon`` more steps from the prior, sampling the module choices ``r_{t}`` and the updates
  ``z_{t}``.  Instead of :class:`pyro.infer.Predictive` (one model run per sample) the context is
  tiled ``num_samples`` times along the batch and the pair guide/model runs once.
* :func:`prediction_metrics` scores sampled futures against the truth (per-horizon MSE, position
  error of matched slots; mean over samples and best of N), :func:`match_predicted_slots` gives
  the object-to-slot matching it needs, :func:`selection_diversity` measures how often two
  samples chose different modules.
* :func:`counterfactual` rolls the model forward with *chosen* modules: the future ``r_{t}`` sites
  are conditioned (``poutine.condition``) on hard one-hot values ("apply module m to slot k at
  step t").  :class:`~pyro_vim.distributions.SafeRelaxedOneHotCategorical` has a finite density
  at exact one-hots, so the conditioned trace has a finite log density.
* :func:`module_rollouts` applies every module repeatedly from one frame (the paper's Fig. 2,
  right) and renders one slot alone.
* :func:`transfer` recognises the rules in target videos and replays them on other objects
  (Sec. 5.3, Fig. 7).

Memory: :func:`predict`, :func:`counterfactual` and :func:`transfer` run the guide and the model
on at most ``max_batch`` (default :data:`MAX_BATCH`) rows at a time (a row is one sample of one
video) and join the results, and the model decodes at most ``vim.decode_batch`` (video, frame)
pairs per decoder call, so their working memory does not grow with videos x samples (what they
return does, of course).  ``max_batch=None`` runs everything at once.

Shapes: ``N`` videos, ``D`` context frames, ``H`` future steps, ``K`` slots, ``M`` modules,
``S`` image size, ``num_samples`` samples.  Positions are ``(x, y)`` = (column, row) in pixels.
"""
from __future__ import annotations

import numbers
from typing import Any, Dict, Optional

import numpy as np
import torch
from pyro import poutine
from pyro.distributions import TorchDistribution
from pyro.poutine.subsample_messenger import _Subsample
from pyro.poutine.trace_struct import Trace
from torch.nn import functional as F

from . import metrics, sites
from .distributions import SpatialGaussianMixture
from .handlers import UseMeans
from .model import VIM

__all__ = [
    "MAX_BATCH",
    "predict",
    "match_predicted_slots",
    "prediction_metrics",
    "selection_diversity",
    "counterfactual",
    "module_rollouts",
    "module_condition",
    "transfer",
    "UseMeans",
]


# ------------------------------------------------------------------------------------------------
# Argument checking
# ------------------------------------------------------------------------------------------------
def _check_vim(vim) -> None:
    if not isinstance(vim, VIM):
        raise TypeError(f"vim must be a pyro_vim.VIM, got {type(vim).__name__}")


def _positive_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def _check_context(vim: VIM, context) -> torch.Tensor:
    """(N, D, 3, S, S) float frames in [0, 1], D >= 1 (a (N, 3, S, S) batch is one frame)."""
    if isinstance(context, torch.Tensor) and context.dim() == 4:
        context = context.unsqueeze(1)
    return vim.check_frames(context, min_frames=1)


def _as_long_tensor(name: str, value, device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
            raise TypeError(f"{name} must hold integer module indices, got dtype {value.dtype}")
        return value.to(device=device, dtype=torch.long)
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer module indices, got dtype {arr.dtype}")
    return torch.as_tensor(arr.astype(np.int64), device=device)


#: rows (one sample of one video) that :func:`predict`, :func:`counterfactual` and
#: :func:`transfer` run through the guide and the model at a time: with the cpu preset at 32x32,
#: 4 context frames and a horizon of 10, predict's peak RSS is 0.48 GB for 16 videos x 8 samples
#: and 0.82 GB for 160 x 8, of which 0.34 GB is the returned futures
#: (benchmarks/predict_memory.py, BENCHMARKS.md)
MAX_BATCH = 64


def _check_max_batch(value) -> Optional[int]:
    """``max_batch``: a positive int, or None for no limit (everything in one run)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 1:
        raise ValueError(f"max_batch must be a positive int (rows per run of the guide and the "
                         f"model) or None, got {value!r}")
    return int(value)


def _row_chunks(rows: int, max_batch: Optional[int]):
    """[start, stop) ranges of at most ``max_batch`` rows covering ``range(rows)``."""
    step = rows if max_batch is None else max_batch
    return [(a, min(rows, a + step)) for a in range(0, rows, step)]


class _Rows:
    """Join the per-chunk outputs (dicts of tensors whose first dim is the row) into tensors of
    all ``rows`` rows, allocated once (no second copy as with a final ``torch.cat``)."""

    def __init__(self, rows: int):
        self.rows, self.out = rows, {}

    def put(self, start: int, part: Dict[str, torch.Tensor]) -> None:
        for key, value in part.items():
            if start == 0 and value.shape[0] == self.rows:
                self.out[key] = value                     # one chunk: the tensors themselves
                continue
            if key not in self.out:
                self.out[key] = value.new_empty((self.rows, *value.shape[1:]))
            self.out[key][start:start + value.shape[0]] = value


class _JoinedDistribution(TorchDistribution):
    """One site's distributions in the traces of several chunks of videos, joined along the
    videos (the first dimension of the site's value): what the trace of one run over all videos
    would hold, as far as ``log_prob`` (and ``sample``) go."""

    arg_constraints: Dict[str, Any] = {}

    def __init__(self, parts, sizes):
        self.parts, self.sizes = list(parts), [int(n) for n in sizes]
        batch_shape = self.parts[0].batch_shape
        if len(batch_shape):
            batch_shape = torch.Size([sum(self.sizes)]) + batch_shape[1:]
        super().__init__(batch_shape, self.parts[0].event_shape, validate_args=False)

    @property
    def support(self):
        return self.parts[0].support

    def log_prob(self, value):
        lps = [p.log_prob(v) for p, v in zip(self.parts, value.split(self.sizes, 0))]
        return torch.cat(lps, 0) if len(self.batch_shape) else sum(lps)

    def sample(self, sample_shape=torch.Size()):
        return torch.cat([p.sample(sample_shape) for p in self.parts], len(sample_shape))


def _join_traces(traces, sizes, args, kwargs) -> Trace:
    """The traces of ``vim.model`` run on consecutive chunks of videos (``sizes`` videos each)
    joined into one trace of all videos: every sample site's value concatenated along the videos,
    its distribution a :class:`_JoinedDistribution`, its cached ``log_prob_sum`` the chunks' sum;
    the ``videos`` plate of the total size.  It has no ``_RETURN`` node (the model's return
    value, whose renders :func:`counterfactual` returns anyway)."""
    if len(traces) == 1:
        return traces[0]
    total = sum(sizes)

    def frames_of(stack):
        return tuple(f._replace(size=total, full_size=total) if f.name == "videos" else f
                     for f in stack)

    joined = Trace(graph_type=traces[0].graph_type)
    for name, first in traces[0].nodes.items():
        node, parts = dict(first), [t.nodes[name] for t in traces]
        if node["type"] == "sample":
            if isinstance(node["fn"], _Subsample):
                if name == "videos":
                    node["fn"] = _Subsample(total, total, device=node["value"].device)
                    node["value"] = torch.arange(total, device=node["value"].device)
            else:
                node["value"] = torch.cat([p["value"] for p in parts], 0)
                node["fn"] = _JoinedDistribution([p["fn"] for p in parts], sizes)
            node["cond_indep_stack"] = frames_of(node["cond_indep_stack"])
            for key in ("log_prob", "unscaled_log_prob", "score_parts", "log_prob_sum"):
                node.pop(key, None)
            if all("log_prob_sum" in p for p in parts):
                node["log_prob_sum"] = sum(p["log_prob_sum"] for p in parts)
        elif name == "_INPUT":
            node["args"], node["kwargs"] = args, kwargs
        elif name == "_RETURN":
            continue          # (states, likelihood): a joined copy would double the renders
        joined.add_node(name, **node)
    return joined


# ------------------------------------------------------------------------------------------------
# Handlers
# ------------------------------------------------------------------------------------------------
def _site_values(trace, names) -> torch.Tensor:
    return torch.stack([trace.nodes[name]["value"] for name in names], 1)


def _run_model(handled_model, frames: torch.Tensor, horizon: int):
    """Trace a (handled) ``vim.model`` and return (trace, states, likelihood)."""
    tracer = poutine.trace(handled_model)
    out = tracer(frames, horizon=horizon)
    if not (isinstance(out, tuple) and len(out) == 2 and hasattr(out[1], "means")):
        raise RuntimeError("vim.model no longer returns (states, likelihood); pyro_vim.infer "
                           "needs the per-slot renders (likelihood.means) it used to return")
    states, likelihood = out
    return tracer.trace, states, likelihood


# ------------------------------------------------------------------------------------------------
# Sampled futures
# ------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(vim: VIM, context: torch.Tensor, horizon: int, num_samples: int = 8,
            max_batch: Optional[int] = MAX_BATCH) -> Dict[str, torch.Tensor]:
    """Sample ``num_samples`` futures of ``horizon`` frames after each context video.

    The context (N, D, 3, S, S), D >= 1, is tiled ``num_samples`` times along the batch (sample
    major: row ``s * N + n`` is sample ``s`` of video ``n``); the guide is traced on it, which
    samples the posterior over the context's latents (``z_0`` and, for D > 1, ``r_1..r_{D-1}``,
    ``z_1..z_{D-1}``), and ``vim.model(context, horizon=horizon)`` is replayed against that trace,
    so the future module choices ``r_D..r_{D+H-1}`` and updates ``z_D..`` are drawn from the prior.
    One guide run and one model run per ``max_batch`` rows (faster than ``Predictive``'s run per
    sample), so the working memory does not grow with N x num_samples.

    Randomness: the rows are independent draws whatever ``max_batch`` is (every row's
    distributions are the same; under :class:`UseMeans` the chunked result equals the unchunked
    one), and the same seed and ``max_batch`` give the same futures.  The draws themselves depend
    on ``max_batch`` unless it covers all N x num_samples rows (then they are those of one run).

    Args:
        vim: a :class:`~pyro_vim.model.VIM`.
        context: (N, D, 3, S, S) float frames in [0, 1] (a (N, 3, S, S) tensor is one frame).
        horizon: number H >= 1 of future frames.
        num_samples: number of futures per video.
        max_batch: rows (one sample of one video) per run of the guide and the model, a
            positive int (default :data:`MAX_BATCH`), or None to run all rows at once.

    Returns:
        A dict of tensors (on the model's device):

        * ``frames`` (num_samples, N, H, 3, S, S): the predicted frames (mixture means);
        * ``positions`` (num_samples, N, H, K, 2): slot positions in pixels;
        * ``masks`` (num_samples, N, H, K, S, S): slot masks (softmax over slots);
        * ``selections`` (num_samples, N, H, K): argmax of the sampled relaxed ``r_{t}`` of each
          future step (future frame ``j`` is reached with ``r_{D+j}``);
        * ``selection_samples`` (num_samples, N, H, K, M): the sampled relaxed ``r_{t}``;
        * ``context_positions`` (num_samples, N, K, 2): slot positions on the last context frame
          (for :func:`match_predicted_slots`).

        With binary modules (``interaction.num_binary_modules``) the selections index the
        M + B modules, and ``partners`` (num_samples, N, H, K) holds each slot's sampled partner
        slot (-1: "none"), ``partner_samples`` (num_samples, N, H, K, K) the relaxed ``p_{t}``.
        With a velocity (``interaction.velocity``) the context needs D >= 2 frames.
    """
    _check_vim(vim)
    horizon = _positive_int("horizon", horizon)
    num_samples = _positive_int("num_samples", num_samples)
    max_batch = _check_max_batch(max_batch)
    context = _check_context(vim, context)
    n, d = context.shape[:2]
    rows = num_samples * n
    out = _Rows(rows)
    for a, b in _row_chunks(rows, max_batch):
        videos = torch.arange(a, b, device=context.device) % n      # row s * N + n is video n
        out.put(a, _predict_rows(vim, context.index_select(0, videos), horizon))
    return {key: value.reshape(num_samples, n, *value.shape[1:])
            for key, value in out.out.items()}


def _predict_rows(vim: VIM, rows: torch.Tensor, horizon: int) -> Dict[str, torch.Tensor]:
    """:func:`predict` on context rows (B, D, 3, S, S), one guide and one model run: outputs
    with the row first."""
    d = rows.shape[1]
    guide_trace = poutine.trace(vim.guide).get_trace(rows, horizon=horizon)
    trace, states, _ = _run_model(poutine.replay(vim.model, trace=guide_trace), rows, horizon)
    r = _site_values(trace, [sites.r_site(t) for t in range(d, d + horizon)])       # (B, H, K, M)
    extra = {}
    if vim.interactions is not None:                    # binary modules: the partner sites
        p = _site_values(trace, [sites.p_site(t) for t in range(d, d + horizon)])   # (B, H, K, K)
        extra = {"partners": vim.interactions.partner_slots(p.argmax(-1)),
                 "partner_samples": p}
    return {
        "frames": trace.nodes["future_frames"]["value"],
        "positions": trace.nodes["future_positions"]["value"],
        "masks": trace.nodes["future_masks"]["value"],
        "selections": r.argmax(-1),
        "selection_samples": r,
        "context_positions": vim.to_pixels(states[d - 1].pos),
        **extra,
    }


def match_predicted_slots(pred: Dict[str, Any], true_context_positions) -> np.ndarray:
    """Match every true object to a slot of every sample, on the last context frame.

    Args:
        pred: the output of :func:`predict` (uses ``context_positions`` (num_samples, N, K, 2)).
        true_context_positions: (N, O, 2) true object positions (pixels) on the last context frame.

    Returns:
        (num_samples, N, O) int64 slot index per object (one-to-one, minimal total distance,
        :func:`pyro_vim.metrics.match_objects_to_slots`).
    """
    if not isinstance(pred, dict) or "context_positions" not in pred:
        raise TypeError("pred must be the dict returned by pyro_vim.infer.predict")
    slots = metrics._as_float(pred["context_positions"], "pred['context_positions']")
    true = metrics._as_float(true_context_positions, "true_context_positions")
    if slots.ndim != 4 or slots.shape[-1] != 2:
        raise ValueError(f"pred['context_positions'] must be (num_samples, N, K, 2), got "
                         f"{slots.shape}")
    if true.ndim != 3 or true.shape[-1] != 2 or true.shape[0] != slots.shape[1]:
        raise ValueError(f"true_context_positions must be (N, O, 2) with N={slots.shape[1]}, got "
                         f"{true.shape}")
    return np.stack([metrics.match_objects_to_slots(true, s) for s in slots])


def selection_diversity(selections) -> float:
    """Fraction of (video, sample pair) whose module choices differ at some step or slot.

    Args:
        selections: (num_samples, N, H, K) int module indices (``predict(...)["selections"]``).

    Returns:
        A float in [0, 1]; ``nan`` with fewer than two samples.
    """
    sel = metrics._as_int(selections, "selections")
    if sel.ndim != 4:
        raise ValueError(f"selections must be (num_samples, N, H, K), got {sel.shape}")
    s = sel.shape[0]
    if s < 2:
        return float("nan")
    flat = sel.reshape(s, sel.shape[1], -1)
    differ = (flat[:, None] != flat[None, :]).any(-1)                        # (S, S, N)
    iu = np.triu_indices(s, k=1)
    return float(differ[iu].mean())


def prediction_metrics(pred: Dict[str, Any], true_frames, true_positions=None,
                       matching=None) -> Dict[str, Any]:
    """Score sampled futures against the true future.

    MSE of a frame is the squared error summed over pixels and channels (the paper's Table 1);
    ``*_per_pixel`` divides it by 3 * S * S.  Position error is the distance in pixels between
    each true object and the predicted position of its matched slot, averaged over objects.
    "mean" averages over samples and videos; "best" (best of N) keeps, for each video, the sample
    whose whole future is closest to the truth (lowest MSE summed over the horizon, or lowest
    position error averaged over the horizon and objects, chosen separately), then averages over
    videos.

    Args:
        pred: the output of :func:`predict` (``frames`` (num_samples, N, H, 3, S, S),
            ``positions`` (num_samples, N, H, K, 2), ``selections``).
        true_frames: (N, H, 3, S, S) the true future frames.
        true_positions: optional (N, H, O, 2) true future object positions in pixels.
        matching: (N, O) or (num_samples, N, O) slot index per object, required with
            ``true_positions`` (see :func:`match_predicted_slots`).

    Returns:
        A dict of numpy arrays / floats: ``mse`` and ``mse_best`` (H,), ``mse_per_pixel`` and
        ``mse_per_pixel_best`` (H,), ``mse_samples`` (num_samples, N, H); with positions also
        ``position_error`` and ``position_error_best`` (H,), ``position_error_samples``
        (num_samples, N, H); and ``selection_diversity`` (:func:`selection_diversity`).
    """
    if not isinstance(pred, dict) or not {"frames", "positions", "selections"} <= set(pred):
        raise TypeError("pred must be the dict returned by pyro_vim.infer.predict")
    frames = metrics._as_float(pred["frames"], "pred['frames']")
    truth = metrics._as_float(true_frames, "true_frames")
    if frames.ndim != 6:
        raise ValueError(f"pred['frames'] must be (num_samples, N, H, 3, S, S), got {frames.shape}")
    s, n, h = frames.shape[:3]
    if truth.shape != frames.shape[1:]:
        raise ValueError(f"true_frames must have shape {frames.shape[1:]} (N, H, 3, S, S), got "
                         f"{truth.shape}")
    se = ((frames - truth[None]) ** 2).sum(axis=(-3, -2, -1))                  # (S, N, H)
    pixels = float(np.prod(frames.shape[-3:]))
    best = np.argmin(se.sum(-1), axis=0)                                       # (N,)
    se_best = se[best, np.arange(n)]                                           # (N, H)
    out: Dict[str, Any] = {
        "num_samples": s,
        "horizon": h,
        "mse": se.mean(axis=(0, 1)),
        "mse_best": se_best.mean(0),
        "mse_per_pixel": se.mean(axis=(0, 1)) / pixels,
        "mse_per_pixel_best": se_best.mean(0) / pixels,
        "mse_samples": se,
        "selection_diversity": selection_diversity(pred["selections"]),
    }
    if true_positions is None:
        return out
    if matching is None:
        raise ValueError("matching (N, O) or (num_samples, N, O) is required with "
                         "true_positions; see pyro_vim.infer.match_predicted_slots")
    pos = metrics._as_float(pred["positions"], "pred['positions']")            # (S, N, H, K, 2)
    true_pos = metrics._as_float(true_positions, "true_positions")
    if true_pos.ndim != 4 or true_pos.shape[:2] != (n, h) or true_pos.shape[-1] != 2:
        raise ValueError(f"true_positions must be (N, H, O, 2) with N={n}, H={h}, got "
                         f"{true_pos.shape}")
    o = true_pos.shape[2]
    mt = metrics._as_int(matching, "matching")
    if mt.shape == (n, o):
        mt = np.broadcast_to(mt, (s, n, o))
    if mt.shape != (s, n, o):
        raise ValueError(f"matching must be (N, O) = ({n}, {o}) or (num_samples, N, O) = "
                         f"({s}, {n}, {o}), got {mt.shape}")
    k = pos.shape[3]
    if mt.size and (mt.min() < 0 or mt.max() >= k):
        raise ValueError(f"matching must hold slot indices in [0, {k})")
    idx = np.broadcast_to(mt[:, :, None, :, None], (s, n, h, o, 2))
    matched = np.take_along_axis(pos, idx, axis=3)                             # (S, N, H, O, 2)
    err = metrics.position_error(matched, np.broadcast_to(true_pos, matched.shape))
    err = metrics._finite_mean(err, axis=-1)                                   # (S, N, H)
    best_pos = np.argmin(np.where(np.isfinite(err), err, np.inf).mean(-1), axis=0)
    out["position_error"] = metrics._finite_mean(err.reshape(s * n, h), axis=0)
    out["position_error_best"] = metrics._finite_mean(err[best_pos, np.arange(n)], axis=0)
    out["position_error_samples"] = err
    return out


# ------------------------------------------------------------------------------------------------
# Counterfactual rollouts
# ------------------------------------------------------------------------------------------------
def module_condition(modules: torch.Tensor, start: int, num_modules: int,
                     dtype=torch.float32) -> Dict[str, torch.Tensor]:
    """``poutine.condition`` data for chosen modules: {``r_{start+j}``: one-hot (N, K, M)}.

    Args:
        modules: (N, H, K) long tensor, ``modules[n, j, k]`` the module slot ``k`` applies at the
            ``j``-th future step.
        start: index t of the first conditioned site ``r_{t}`` (the number of context frames).
        num_modules: M.
    """
    onehot = F.one_hot(modules, num_modules).to(dtype)
    return {sites.r_site(start + j): onehot[:, j] for j in range(modules.shape[1])}


@torch.no_grad()
def counterfactual(vim: VIM, context: torch.Tensor, modules, sample_updates: bool = False,
                   max_batch: Optional[int] = MAX_BATCH) -> Dict[str, Any]:
    """Roll the model forward from context frames, applying the chosen modules.

    ``modules[n, t, k] = m`` means "apply module m to slot k at future step t".  The guide infers
    the context's latents (``z_0`` from the discovery posterior and, for D > 1 context frames,
    the context's ``r_{t}``, ``z_{t}``); the model is replayed against them and the future sites
    ``r_{D}..r_{D+H-1}`` are conditioned with ``poutine.condition`` on the hard one-hot module
    choices.  By default the rollout is deterministic: every guide site takes its mean (hard mode
    for ``r``) and every future update ``z_{t}`` the mean of its prior (:class:`UseMeans`); with
    ``sample_updates=True`` they are sampled.  The videos run ``max_batch`` at a time; the
    deterministic rollout does not depend on it (up to float rounding).

    Args:
        vim: a :class:`~pyro_vim.model.VIM`.
        context: (N, D, 3, S, S) frames in [0, 1], D >= 1 (or (N, 3, S, S): one frame).
        modules: int array / tensor (H, K) (the same for every video) or (N, H, K), values in
            [0, M) (with binary modules [0, M + B): a binary module's partner is then the
            prior's likeliest, or sampled with ``sample_updates``).
        sample_updates: sample ``z`` (and the guide's ``r``) instead of taking means.
        max_batch: videos per run of the guide and the model, a positive int (default
            :data:`MAX_BATCH`), or None to run all videos at once.

    Returns:
        A dict: ``frames`` (N, H, 3, S, S), ``positions`` (N, H, K, 2) pixels, ``masks``
        (N, H, K, S, S), ``slot_renders`` (N, H, K, 3, S, S) each slot alone (rgb times mask on
        black), ``modules`` (N, H, K); the same on the last context frame as ``start_frame``
        (N, 3, S, S), ``start_positions`` (N, K, 2), ``start_masks``, ``start_slot_renders``;
        ``trace`` (the conditioned model's :class:`pyro.poutine.Trace`; with several chunks,
        their traces joined along the videos, without the ``_RETURN`` node) and ``log_density``
        (its ``log_prob_sum()``, finite).
    """
    _check_vim(vim)
    if not isinstance(sample_updates, bool):
        raise TypeError(f"sample_updates must be a bool, got {sample_updates!r}")
    max_batch = _check_max_batch(max_batch)
    context = _check_context(vim, context)
    n, d = context.shape[:2]
    c = vim.config
    mods = _as_long_tensor("modules", modules, context.device)
    if mods.dim() == 2:
        mods = mods.unsqueeze(0).expand(n, *mods.shape)
    if mods.dim() != 3 or mods.shape[0] != n or mods.shape[2] != c.num_slots \
            or mods.shape[1] < 1:
        raise ValueError(f"modules must have shape (H, K) or (N, H, K) with N={n}, K="
                         f"{c.num_slots}, H >= 1, got {tuple(mods.shape)}")
    if mods.min() < 0 or mods.max() >= c.num_choices:
        raise ValueError(f"modules must be module indices in [0, {c.num_choices}), got values "
                         f"in [{mods.min().item()}, {mods.max().item()}]")
    horizon = mods.shape[1]
    out, traces, sizes = _Rows(n), [], []
    for a, b in _row_chunks(n, max_batch):
        part, trace = _counterfactual_rows(vim, context[a:b], mods[a:b], sample_updates)
        out.put(a, part)
        traces.append(trace)
        sizes.append(b - a)
    trace = _join_traces(traces, sizes, (context,), {"horizon": horizon})
    keys = ("frames", "positions", "masks", "slot_renders")
    return {**{k: out.out[k] for k in keys}, "modules": mods,
            **{k: v for k, v in out.out.items() if k not in keys},
            "trace": trace, "log_density": trace.log_prob_sum()}


def _counterfactual_rows(vim: VIM, context: torch.Tensor, mods: torch.Tensor,
                         sample_updates: bool):
    """:func:`counterfactual` on a chunk of videos: (outputs with the video first, trace)."""
    d, horizon = context.shape[1], mods.shape[1]
    c = vim.config
    guide = vim.guide
    if not sample_updates:
        context_sites = [f(t) for t in range(1, d)
                         for f in (sites.r_site, sites.z_site, sites.p_site)]
        guide = UseMeans([sites.Z0] + context_sites)(guide)
    guide_trace = poutine.trace(guide).get_trace(context, horizon=horizon)
    data = module_condition(mods, d, c.num_choices, dtype=context.dtype)
    model = poutine.condition(poutine.replay(vim.model, trace=guide_trace), data=data)
    if not sample_updates:         # mean updates and, with binary modules, the likeliest partner
        model = UseMeans([f(t) for t in range(d, d + horizon)
                          for f in (sites.z_site, sites.p_site)])(model)
    trace, states, likelihood = _run_model(model, context, horizon)
    trace.log_prob_sum()               # cached in every site, so a joined trace sums the chunks
    start = SpatialGaussianMixture(likelihood.means[:, d - 1], likelihood.mask_logits[:, d - 1],
                                   likelihood.scale)        # the last context frame only
    start_masks = start.masks
    start_renders = start.means * start_masks.unsqueeze(-3)
    future_masks = trace.nodes["future_masks"]["value"]
    part = {
        "frames": trace.nodes["future_frames"]["value"],
        "positions": trace.nodes["future_positions"]["value"],
        "masks": future_masks,
        "slot_renders": likelihood.means[:, d:] * future_masks.unsqueeze(-3),
        "start_frame": start_renders.sum(-4),
        "start_positions": vim.to_pixels(states[d - 1].pos),
        "start_masks": start_masks,
        "start_slot_renders": start_renders,
    }
    return part, trace


@torch.no_grad()
def module_rollouts(vim: VIM, frame: torch.Tensor, slot: int, num_steps: int,
                    sample_updates: bool = False) -> Dict[str, torch.Tensor]:
    """Apply each module ``num_steps`` times from one frame and render one slot alone (Fig. 2).

    For every module m, the rollout from ``frame`` conditions *all* slots (not only ``slot``) on
    module m at every step: a ``r_{t}`` site holds the choice of every slot, and moving all slots
    alike keeps their relative layout, hence the slot's share of the softmax masks, as on the
    input frame.  The M rollouts run as one batch of M copies of the frame (see
    :func:`counterfactual`, deterministic unless ``sample_updates``).

    Args:
        vim: a :class:`~pyro_vim.model.VIM`.
        frame: (3, S, S) or (1, 3, S, S) frame in [0, 1].
        slot: index of the slot to render, in [0, K).
        num_steps: number of module applications (>= 1).

    Returns:
        ``renders`` (M, num_steps + 1, 3, S, S): the slot's rgb times its mask on black, step 0
        being the reconstruction of ``frame``; ``positions`` (M, num_steps + 1, 2) the slot's
        positions in pixels; ``frames`` (M, num_steps + 1, 3, S, S) the full rendered frames.
    """
    _check_vim(vim)
    num_steps = _positive_int("num_steps", num_steps)
    c = vim.config
    if isinstance(slot, (bool, np.bool_)) or not isinstance(slot, numbers.Integral):
        raise TypeError(f"slot must be an int, got {slot!r}")
    if not 0 <= slot < c.num_slots:
        raise ValueError(f"slot must be in [0, {c.num_slots}), got {slot}")
    if not isinstance(frame, torch.Tensor):
        raise TypeError(f"frame must be a torch.Tensor (3, S, S), got {type(frame).__name__}")
    if frame.dim() == 4 and frame.shape[0] == 1:
        frame = frame[0]
    if frame.dim() != 3:
        raise ValueError(f"frame must have shape (3, S, S) or (1, 3, S, S), got "
                         f"{tuple(frame.shape)}")
    m = c.num_modules
    context = frame.expand(m, 1, *frame.shape)
    modules = torch.arange(m).view(m, 1, 1).expand(m, num_steps, c.num_slots)
    out = counterfactual(vim, context, modules, sample_updates=sample_updates)
    renders = torch.cat([out["start_slot_renders"][:, None, slot],
                         out["slot_renders"][:, :, slot]], 1)
    positions = torch.cat([out["start_positions"][:, None, slot], out["positions"][:, :, slot]], 1)
    frames = torch.cat([out["start_frame"][:, None], out["frames"]], 1)
    return {"renders": renders, "positions": positions, "frames": frames}


@torch.no_grad()
def module_translations(vim: VIM, states, velocities=None) -> torch.Tensor:
    """Mean translation in pixels (M, 2), as (x = column, y = row), that each module f_m applies
    to the slot states ``states`` (..., 2 + D) (e.g. ``vim.infer(frames)["slots"]`` of the slots
    matched to objects).  After training on Random Walk, each used module should move a slot by
    about one step (3 px) in one of the four directions.

    With a velocity (``interaction.velocity``) the slots' ``velocities`` (..., 2) in pixels per
    frame (``infer``'s ``velocities``; default zero) enter the modules, and the translation is
    the modules' deviation from inertial flight (dpos: 0 for free flight)."""
    _check_vim(vim)
    c = vim.config
    if not isinstance(states, torch.Tensor) or states.shape[-1] != c.state_dim \
            or states.numel() == 0:
        shape = tuple(states.shape) if isinstance(states, torch.Tensor) else type(states).__name__
        raise ValueError(f"states must be a non-empty tensor (..., {c.state_dim}) of slot "
                         f"states (pos, feat), got {shape}")
    states = states.reshape(-1, c.state_dim).to(next(vim.parameters()).device)
    dpos = vim.transition(states[:, :2], states[:, 2:],
                          *_normalised_velocities(vim, velocities, states))[0]   # (P, M, 2)
    return dpos.mean(0) * ((c.image_size - 1) / 2.0)


def _normalised_velocities(vim: VIM, velocities, states: torch.Tensor):
    """``[]`` without a velocity in the model, else ``[vel]`` (P, 2) in normalised units from
    pixels per frame (zeros when ``velocities`` is None)."""
    if not vim.config.velocity:
        return []
    if velocities is None:
        return [torch.zeros_like(states[:, :2])]
    vel = torch.as_tensor(velocities, dtype=states.dtype, device=states.device)
    return [vel.reshape(-1, 2) * (2.0 / (vim.config.image_size - 1))]


@torch.no_grad()
def transfer(vim: VIM, target: torch.Tensor, source_frame: torch.Tensor,
             max_batch: Optional[int] = MAX_BATCH) -> Dict[str, Any]:
    """Dynamics transfer (Sec. 5.3): recognise the rules in ``target`` videos, replay them on the
    objects of ``source_frame``.

    The guide infers the module choices ``r`` on the target sequences (hard choices, mean
    updates: ``vim.infer``); the model is then rolled forward from ``source_frame`` conditioned on
    those choices with ``poutine.condition`` and no observation, deterministically
    (:func:`counterfactual`).  ``source_frame`` should hold known objects at the target's frame-0
    positions (e.g. ``RandomWalk().render(positions)``): each target slot hands its choices to the
    source slot nearest to it on frame 0 (one-to-one; slot 0, the background slot, to slot 0).
    The videos are transferred ``max_batch`` at a time (the result does not depend on it, up to
    float rounding).

    Args:
        vim: a trained :class:`~pyro_vim.model.VIM`.
        target: (N, T, 3, S, S) frames in [0, 1], T >= 2.
        source_frame: (N, 3, S, S) frames in [0, 1].
        max_batch: videos per chunk (inference on the targets and rollouts), a positive int
            (default :data:`MAX_BATCH`), or None to run all videos at once.

    Returns:
        ``frames`` (N, T-1, 3, S, S) and ``positions`` (N, T-1, K, 2) (pixels) of the transferred
        rollout for frames 1..T-1, ``start_positions`` (N, K, 2) of the source slots,
        ``modules`` (N, T-1, K) the choices applied to the source slots and ``slot_map``
        (N, K): the target slot whose choices each source slot replays.
    """
    _check_vim(vim)
    max_batch = _check_max_batch(max_batch)
    target = vim.check_frames(target, min_frames=2)
    source = _check_context(vim, source_frame)
    if source.shape[1] != 1 or source.shape[0] != target.shape[0]:
        raise ValueError(f"source_frame must be (N, 3, S, S) with N={target.shape[0]} (one "
                         f"frame per target video), got {tuple(source_frame.shape)}")
    n = target.shape[0]
    out = _Rows(n)
    for a, b in _row_chunks(n, max_batch):
        out.put(a, _transfer_videos(vim, target[a:b], source[a:b]))
    return out.out


def _transfer_videos(vim: VIM, target: torch.Tensor, source: torch.Tensor) -> Dict[str, Any]:
    """:func:`transfer` on a chunk of videos (checked), in one run each."""
    n, k = target.shape[0], vim.config.num_slots
    inferred = vim.infer(target, decode=False)
    choices = inferred["selections"]                                        # (N, T-1, K)
    start = counterfactual(vim, source, choices[:, :1], max_batch=None)["start_positions"]
    slot_map = torch.zeros(n, k, dtype=torch.long, device=choices.device)
    if k > 1:
        cost = torch.cdist(start[:, 1:], inferred["positions"][:, 0, 1:]).cpu().numpy()
        for v in range(n):
            rows, cols = metrics.linear_sum_assignment(cost[v])
            slot_map[v, 1 + torch.as_tensor(rows)] = 1 + torch.as_tensor(cols).to(slot_map)
    modules = torch.gather(choices, 2, slot_map[:, None].expand_as(choices))
    out = counterfactual(vim, source, modules, max_batch=None)
    return {"frames": out["frames"], "positions": out["positions"],
            "start_positions": out["start_positions"], "modules": modules,
            "slot_map": slot_map}
