"""Table 1: reconstruction error of RIM, SCOFF and VIM over 5-frame sequences.

The squared error of a frame is summed over pixels and channels (the paper's "MSE"); a
:func:`summarise`\\ d score reports it per frame (averaged over the scored frames and the
sequences, ``per_frame``) and per pixel (``per_pixel`` = ``per_frame / (3 H W)``), with the
per-step means and the standard deviation over sequences.  The scored frames are 1..4, the four
frames that have a past (RIM and SCOFF predict frame t from the true frames < t; frame 0 has none):

* (a) :func:`teacher_forced_errors` — RIM/SCOFF: ``model.infer(frames)["recon"]``, each frame
  predicted from the true previous frames (teacher forcing);
* (b) :func:`inference_errors` — VIM with its inference network: ``vim.infer(frames)["recon"]``
  (the guide sees frame t when it reconstructs it); also reported over all 5 frames;
* (c) :func:`prior_one_step_errors` — VIM one step ahead from its prior (also scored as the mean
  of its samples, ``vim_prior_mean``: the blur a squared-error predictor converges to): for
  every t, the guide is run on frames ``0..t-1`` only (posterior samples of ``z_0``, ``r_{1..t-1}``,
  ``z_{1..t-1}``) and the model is replayed on that trace with one step of horizon, so ``r_t``
  and ``z_t`` are sampled from the model's prior (:func:`pyro_vim.infer.predict`); frame t is
  the rendered mean of the predicted slots and never enters the computation.

:func:`table1_metrics` scores a model of either kind on a :class:`~pyro_vim.data.VideoBatch`;
``python -m pyro_vim.run table1`` records it in each run's ``metrics.json``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from ..data import MOVE_VECTORS

__all__ = ["SEQ_LEN", "squared_errors", "summarise", "teacher_forced_errors",
           "inference_errors", "prior_one_step_predictions", "prior_one_step_errors",
           "table1_metrics", "reference_errors", "legal_moves", "draw_legal_moves",
           "sample_rows", "predicts_one_step", "one_step_means", "one_step_errors",
           "unit_centroid_errors"]

#: Frames per Table 1 sequence.
SEQ_LEN = 5


def squared_errors(prediction, truth) -> np.ndarray:
    """Squared error of each frame summed over channels and pixels: (N, T, 3, H, W) -> (N, T)."""
    p = np.asarray(prediction.detach().cpu() if isinstance(prediction, torch.Tensor)
                   else prediction, dtype=np.float64)
    x = np.asarray(truth.detach().cpu() if isinstance(truth, torch.Tensor) else truth,
                   dtype=np.float64)
    if p.shape != x.shape or p.ndim != 5:
        raise ValueError(f"prediction and truth must both be (N, T, 3, H, W), got {p.shape} "
                         f"and {x.shape}")
    return ((p - x) ** 2).sum(axis=(2, 3, 4))


def summarise(se: np.ndarray, pixels: int, first_frame: int = 1) -> Dict[str, Any]:
    """Scores of the squared errors ``se`` (N, T) of frames with ``pixels`` = 3 H W values,
    over frames ``first_frame..T-1``: ``per_frame`` (mean over those frames and the sequences),
    ``per_pixel``, ``per_step`` (one mean per scored frame), ``std_over_sequences`` (of each
    sequence's mean), ``frames`` (the scored frame indices) and ``sequences``."""
    se = np.asarray(se, dtype=np.float64)
    if se.ndim != 2 or not 0 <= first_frame < se.shape[1]:
        raise ValueError(f"se must be (N, T) with T > first_frame={first_frame}, got "
                         f"{se.shape}")
    part = se[:, first_frame:]
    return {"per_frame": float(part.mean()), "per_pixel": float(part.mean() / pixels),
            "per_step": part.mean(0).tolist(), "std_over_sequences": float(part.mean(1).std()),
            "frames": list(range(first_frame, se.shape[1])), "sequences": int(se.shape[0])}


def _frames(frames) -> torch.Tensor:
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if not isinstance(frames, torch.Tensor) or frames.dim() != 5 or frames.shape[1] < 2:
        raise ValueError("frames must be (N, T, 3, H, W) with T >= 2 frames, got "
                         f"{getattr(frames, 'shape', type(frames).__name__)}")
    return frames.float()


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def teacher_forced_errors(model, frames, chunk: int = 64) -> np.ndarray:
    """(a) (N, T) squared errors of a teacher-forced predictor (RIM/SCOFF): frame t of
    ``model.infer(frames)["recon"]`` is predicted from the true frames < t."""
    frames = _frames(frames)
    out = [squared_errors(model.infer(frames[i:i + chunk].to(_device(model)))["recon"],
                          frames[i:i + chunk]) for i in range(0, len(frames), chunk)]
    return np.concatenate(out)


@torch.no_grad()
def inference_errors(vim, frames, chunk: int = 64) -> np.ndarray:
    """(b) (N, T) squared errors of VIM's reconstruction by its inference network."""
    return teacher_forced_errors(vim, frames, chunk)   # the same call: infer(frames)["recon"]


@torch.no_grad()
def prior_one_step_predictions(vim, frames, num_samples: int = 4,
                               chunk: int = 64) -> torch.Tensor:
    """(c) VIM's one-step predictions from the prior, (num_samples, N, T-1, 3, H, W) on the CPU:
    entry ``[s, n, t-1]`` is sample s of frame t predicted from frames ``0..t-1`` only (the guide
    on those frames, then ``r_t`` and ``z_t`` from the model's prior and the mean of the rendered
    mixture; :func:`pyro_vim.infer.predict` with a horizon of one frame)."""
    from ..infer import predict
    frames = _frames(frames)
    device = _device(vim)
    steps = []
    for t in range(1, frames.shape[1]):
        parts = [predict(vim, frames[i:i + chunk, :t].to(device), horizon=1,
                         num_samples=num_samples)["frames"][:, :, 0].cpu()
                 for i in range(0, len(frames), chunk)]
        steps.append(torch.cat(parts, 1))                                  # (S, N, 3, H, W)
    return torch.stack(steps, 2)


@torch.no_grad()
def prior_one_step_errors(vim, frames, num_samples: int = 4, chunk: int = 64) -> np.ndarray:
    """(c) (num_samples, N, T-1) squared errors of :func:`prior_one_step_predictions` against
    frames 1..T-1."""
    frames = _frames(frames)
    pred = prior_one_step_predictions(vim, frames, num_samples, chunk)
    return np.stack([squared_errors(p, frames[:, 1:]) for p in pred])


def predicts_one_step(model) -> bool:
    """Whether ``model`` predicts frame t from frames < t in a way :func:`one_step_means` reads:
    VIM (one step from its prior, :func:`pyro_vim.infer.predict`: one module selection per
    transition and no velocity, which needs two context frames) or a teacher-forced family
    (``teacher_forced = True``: RIM, SCOFF).  G-SWM's ``infer`` reconstructs frame t having
    seen it, so it does not."""
    from ..model import VIM
    if isinstance(model, VIM):
        c = model.config
        return c.iterations == 1 and not c.interaction.velocity
    return bool(getattr(model, "teacher_forced", False))


@torch.no_grad()
def one_step_means(model, frames, num_samples: int = 8, chunk: int = 64) -> torch.Tensor:
    """(N, T-1, 3, H, W) on the CPU: the prediction of frames 1..T-1, each from the true frames
    before it only -- for VIM the mean of ``num_samples`` one-step samples of its prior (the
    predictive mean, :func:`prior_one_step_predictions`), for a teacher-forced family (RIM,
    SCOFF) its deterministic ``infer(frames)["recon"]``.  The caller sets eval mode and seeds."""
    from ..model import VIM
    frames = _frames(frames)
    if not predicts_one_step(model):
        raise ValueError(f"a {type(model).__name__} model has no one-step prediction of frame t "
                         "from the frames before it (VIM-1 without a velocity and the "
                         "teacher-forced RIM/SCOFF have)")
    if isinstance(model, VIM):
        return prior_one_step_predictions(model, frames, num_samples, chunk).mean(0)
    out = [model.infer(frames[i:i + chunk].to(_device(model)))["recon"][:, 1:].cpu()
           for i in range(0, len(frames), chunk)]
    return torch.cat(out).float()


def one_step_errors(model, frames, num_samples: int = 8, chunk: int = 64) -> Dict[str, Any]:
    """:func:`summarise` of the squared errors of :func:`one_step_means` over frames 1..T-1:
    the one quantity every family is scored by during training (the validation error of
    :mod:`pyro_vim.train.stopping`), ``per_frame`` = ``table1_metrics``' ``teacher_forced``
    for RIM/SCOFF and ``vim_prior_mean`` for VIM (up to the prior's draws)."""
    frames = _frames(frames)
    pred = one_step_means(model, frames, num_samples, chunk)
    se = squared_errors(pred, frames[:, 1:])
    pad = np.full((len(se), 1), np.nan)                            # frame 0 has no past
    return summarise(np.concatenate([pad, se], 1), int(np.prod(frames.shape[2:])))


@torch.no_grad()
def unit_centroid_errors(model, batch, chunk: int = 64,
                         seq_len: Optional[int] = SEQ_LEN) -> Dict[str, Any]:
    """Where a teacher-forced family's units put their objects (issue 32's check of RIM and
    SCOFF): the centroid of each unit's mask in the prediction of frame t
    (``model.infer(frames)["masks"]``) against the true object positions at frame t-1, the
    last frame the units read.  A squared-error predictor of a random walk spreads each object
    over its possible moves around that position (the paper's "plus"-shaped blur, Fig. 8), so
    a unit that tracks its object has its centroid there; the distance to frame t's position
    is reported beside it.  Per frame 1..T-1 the objects are matched one-to-one to the units
    (:func:`pyro_vim.metrics.match_objects_to_slots`, every unit a candidate, the background's
    too).  Returns ``previous`` and ``current`` (mean distances, px), ``within_1px`` (fraction
    of objects within 1 px of their previous position) and ``per_step`` (mean ``previous`` per
    frame)."""
    from ..metrics import mask_centroids, match_objects_to_slots
    frames = getattr(batch, "frames", None)
    positions = getattr(batch, "positions", None)
    if frames is None or positions is None:
        raise ValueError("unit_centroid_errors needs a VideoBatch with the true positions")
    frames, positions = _frames(frames), np.asarray(positions, dtype=np.float64)
    if seq_len is not None:
        frames, positions = frames[:, :seq_len], positions[:, :seq_len]
    masks = np.concatenate([model.infer(frames[i:i + chunk].to(_device(model)))["masks"]
                            .double().cpu().numpy() for i in range(0, len(frames), chunk)])
    centroids = mask_centroids(masks)                                  # (N, T, K, 2)
    prev, cur = [], []
    for t in range(1, frames.shape[1]):
        match = match_objects_to_slots(positions[:, t - 1], centroids[:, t])     # (N, O)
        chosen = np.take_along_axis(centroids[:, t], match[..., None], axis=1)   # (N, O, 2)
        prev.append(np.linalg.norm(chosen - positions[:, t - 1], axis=-1))
        cur.append(np.linalg.norm(chosen - positions[:, t], axis=-1))
    prev, cur = np.stack(prev, 1), np.stack(cur, 1)                    # (N, T-1, O)
    return {"previous": float(np.nanmean(prev)), "current": float(np.nanmean(cur)),
            "within_1px": float(np.nanmean(prev <= 1.0)),
            "per_step": np.nanmean(prev, axis=(0, 2)).tolist()}


def table1_metrics(model, batch, num_samples: int = 4, chunk: int = 64,
                   seq_len: Optional[int] = SEQ_LEN) -> Dict[str, Any]:
    """Table 1 scores of ``model`` on ``batch`` (a VideoBatch or (N, T, 3, H, W) frames; the
    first ``seq_len`` frames are used).

    For VIM: ``vim_inference`` (b) over frames 1..4 and ``vim_inference_all_frames`` over 0..4,
    ``vim_prior_one_step`` (c) over frames 1..4 (``num_samples`` prior samples per frame,
    errors averaged over them) and ``vim_prior_mean``, the error of the average of those
    samples (the predictive mean, estimated: what a deterministic predictor that minimises the
    squared error would output); for RIM/SCOFF: ``teacher_forced`` (a) over frames 1..4 and
    ``teacher_forced_all_frames`` (frame 0 predicted from the empty history).  ``mse`` and
    ``mse_per_pixel`` are the model's Table 1 entry: (b) for VIM, (a) for the baselines; VIM
    also has ``mse_prior_one_step``, (c)'s ``per_frame``.
    """
    from ..model import VIM
    frames = batch.frames if hasattr(batch, "frames") else batch
    frames = _frames(frames)
    if seq_len is not None:
        if frames.shape[1] < seq_len:
            raise ValueError(f"Table 1 scores sequences of {seq_len} frames, got "
                             f"{frames.shape[1]}")
        frames = frames[:, :seq_len]
    pixels = int(np.prod(frames.shape[2:]))
    was_training = model.training
    model.eval()
    try:
        if isinstance(model, VIM):
            se = inference_errors(model, frames, chunk)
            pred = prior_one_step_predictions(model, frames, num_samples, chunk)
            prior = np.stack([squared_errors(p, frames[:, 1:]) for p in pred]).mean(0)
            mean = squared_errors(pred.mean(0), frames[:, 1:])        # (N, T-1)
            pad = np.full((len(prior), 1), np.nan)                    # frame 0 has no past
            out = {"vim_inference": summarise(se, pixels),
                   "vim_inference_all_frames": summarise(se, pixels, first_frame=0),
                   "vim_prior_one_step": summarise(np.concatenate([pad, prior], 1), pixels),
                   "vim_prior_mean": summarise(np.concatenate([pad, mean], 1), pixels),
                   "prior_samples": int(num_samples)}
            headline = out["vim_inference"]
        else:
            se = teacher_forced_errors(model, frames, chunk)
            out = {"teacher_forced": summarise(se, pixels),
                   "teacher_forced_all_frames": summarise(se, pixels, first_frame=0)}
            if getattr(batch, "positions", None) is not None:
                out["unit_centroids"] = unit_centroid_errors(model, batch, chunk, seq_len)
            headline = out["teacher_forced"]
    finally:
        model.train(was_training)
    out["mse"] = headline["per_frame"]
    out["mse_per_pixel"] = headline["per_pixel"]
    if "vim_prior_one_step" in out:
        out["mse_prior_one_step"] = out["vim_prior_one_step"]["per_frame"]
    out["seq_len"] = int(frames.shape[1])
    return out


def legal_moves(start, step: float, low, high) -> np.ndarray:
    """(..., 4) whether each of the four moves (:data:`pyro_vim.data.MOVE_VECTORS`) keeps the
    centre ``start`` (..., 2) within ``low``..``high`` (broadcastable to (..., 1))."""
    cand = np.asarray(start, dtype=np.float64)[..., None, :] \
        + step * MOVE_VECTORS.astype(np.float64)                            # (..., 4, 2)
    low, high = np.asarray(low)[..., None, :], np.asarray(high)[..., None, :]
    return np.all((cand >= low) & (cand <= high), -1)


def draw_legal_moves(legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One move per object, uniformly among its ``legal`` ones (..., 4): the data's rule."""
    return np.where(legal, rng.random(legal.shape), -1.0).argmax(-1)


def reference_errors(generator, batch, num_draws: int = 64, seed: int = 0,
                     seq_len: Optional[int] = SEQ_LEN) -> Dict[str, Any]:
    """Model-free references for the Table 1 scores of ``batch`` (Random Walk, atomic moves),
    each a :func:`summarise` over frames 1..T-1:

    * ``background``: every frame predicted as the empty background (a predictor that never
      learned the objects);
    * ``previous_frame``: frame t predicted as frame t-1;
    * ``oracle_sample``: a perfect stochastic predictor -- the objects' true positions at t-1,
      each moved by a move drawn uniformly among those that keep it in the frame (the data's
      rule), rendered; the error averaged over ``num_draws`` draws;
    * ``oracle_mean``: the average of those ``num_draws`` rendered futures, i.e. the best
      deterministic predictor of frame t from the true state at t-1 (the conditional mean,
      estimated).

    A deterministic next-frame model can do no better than ``oracle_mean`` on average; a model
    whose samples follow the data scores ``oracle_sample`` per sample."""
    frames = np.asarray(batch.frames, dtype=np.float64)
    pos = np.asarray(batch.positions)
    if seq_len is not None:
        frames, pos = frames[:, :seq_len], pos[:, :seq_len]
    n, t_len = frames.shape[:2]
    step = int(batch.config.get("step", getattr(generator, "step", 1)))
    colors = np.asarray(batch.attributes["color"], dtype=np.float32)
    half = np.asarray(batch.attributes["size"], dtype=np.float64)[..., None]      # (N, O, 1)
    low, high = half, generator.image_size - 1 - half
    vectors = MOVE_VECTORS.astype(np.float64)
    rng = np.random.default_rng(seed)
    background = np.broadcast_to(np.asarray(generator.background, dtype=np.float64),
                                 frames.shape[2:])
    se = {"background": ((frames - background) ** 2).sum(axis=(2, 3, 4))}
    se["previous_frame"] = np.concatenate(
        [np.full((n, 1), np.nan), ((frames[:, 1:] - frames[:, :-1]) ** 2).sum(axis=(2, 3, 4))],
        1)
    sample_se = np.full((n, t_len), np.nan)
    mean_se = np.full((n, t_len), np.nan)
    for t in range(1, t_len):
        start = pos[:, t - 1].astype(np.float64)                           # (N, O, 2)
        legal = legal_moves(start, step, low, high)                        # (N, O, 4)
        total = np.zeros(frames[:, t].shape)
        errors = []
        for _ in range(num_draws):
            move = draw_legal_moves(legal, rng)                             # (N, O)
            nxt = start + step * vectors[move]
            draw = generator.render(nxt, colors).astype(np.float64)
            total += draw
            errors.append(((draw - frames[:, t]) ** 2).sum(axis=(1, 2, 3)))
        sample_se[:, t] = np.mean(errors, 0)
        mean_se[:, t] = ((total / num_draws - frames[:, t]) ** 2).sum(axis=(1, 2, 3))
    se["oracle_sample"], se["oracle_mean"] = sample_se, mean_se
    pixels = int(np.prod(frames.shape[2:]))
    out = {name: summarise(v, pixels) for name, v in se.items()}
    out["num_draws"] = int(num_draws)
    return out


@torch.no_grad()
def sample_rows(models: Dict[str, Any], frames, num_samples: int = 2):
    """Fig. 8: the rows of one video's frames 1..T-1 (``frames`` (1, T, 3, H, W) or (T, 3, H,
    W)) as ``[(label, images (T-1, 3, H, W)), ...]``: the truth, then for each model in
    ``models`` (label -> model) its one-step predictions -- a deterministic predictor's
    teacher-forced frames (RIM, SCOFF: ``infer(frames)["recon"]``), and ``num_samples`` rows of
    VIM's samples from its prior one step ahead (:func:`prior_one_step_predictions`).  A
    deterministic model must average over the possible moves (a blur); a sample picks one."""
    frames = _frames(frames if not isinstance(frames, torch.Tensor) or frames.dim() == 5
                     else frames[None])
    if isinstance(frames, torch.Tensor) and frames.shape[0] != 1:
        raise ValueError(f"sample_rows draws one video, got {frames.shape[0]}")
    rows = [("truth", frames[0, 1:])]
    for label, model in models.items():
        if getattr(getattr(model, "config", None), "model", None) == "vim":
            pred = prior_one_step_predictions(model, frames, num_samples=num_samples)
            rows += [(f"{label} sample {s + 1}", pred[s, 0]) for s in range(num_samples)]
        else:
            rows.append((label, model.infer(frames.to(_device(model)))["recon"][0, 1:].cpu()))
    return rows
