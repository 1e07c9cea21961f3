"""Do the learned modules implement the rules, and do sampled futures follow the data?

Three measurements on held-out ground truth (positions in pixels, x = column, y = row):

* :func:`module_step_errors` (in :mod:`pyro_vim.evaluate`): each rule's module translation
  against the true move.
* :func:`rollout_errors`: from frame 0, each ball's slot is moved by the module assigned to its
  true move at every step, with no observation to correct it (deterministic: hard choices and
  mean updates, :func:`pyro_vim.infer.counterfactual`); the distance to the true position, by
  horizon.
* :func:`prior_calibration`: one-step futures sampled from the model's prior
  p(r_t | h_{t-1}) (:func:`pyro_vim.infer.predict`, two context frames); each ball's sampled
  displacement is classified to the nearest of the four moves.  Away from the walls each move has
  probability 1/4 in the data; at a wall the data never make a move that leaves the frame.  The
  sizes count too: every data move is exactly one step long (``mean_step``, ``move_error``).
  :func:`move_frequencies` is the counting part, usable on any displacements.
* :func:`composition_errors`: VIM-k on compositions of several moves per frame (Fig. 5).
* :func:`transfer_errors`: rules recognised on unseen objects, replayed on known ones (Fig. 7).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np
import torch

from . import metrics
from .data import MOVE_VECTORS, MOVES, VideoBatch

__all__ = ["rollout_errors", "move_frequencies", "prior_calibration", "composition_errors",
           "transfer_errors", "placeable", "composition_test_batch", "transfer_test_batch"]


@torch.no_grad()
def rollout_errors(vim, batch: VideoBatch, assignment: Mapping[int, int],
                   horizon: int = 7) -> Dict[str, Any]:
    """Roll each ball's slot with the module of its true moves; error against the truth.

    Args:
        vim: a trained :class:`~pyro_vim.model.VIM`.
        batch: held-out atomic sequences with ``seq_len > horizon``.
        assignment: rule index -> module (e.g. the identification report's assignment); a rule
            without a module makes the rollout undefined (returns None values).
        horizon: number of module applications.

    Returns:
        ``{"per_step": [error after 1..horizon steps], "mean": mean over steps, "start": the
        error at frame 0 (slot vs ball before any module), "horizon": horizon}``; errors are
        averaged over balls and videos.
    """
    from .infer import counterfactual
    if batch.moves.shape[-1] != 1:
        raise ValueError("rollout_errors needs atomic moves (one move per object per step)")
    horizon = min(int(horizon), batch.seq_len - 1)
    if horizon < 1:
        raise ValueError("rollout_errors needs sequences of at least 2 frames")
    if any(r not in assignment for r in range(len(MOVES))):
        return {"per_step": None, "mean": None, "start": None, "horizon": horizon,
                "note": "some rule has no module assigned"}
    device = next(vim.parameters()).device
    frames = torch.from_numpy(batch.frames[:, :1]).to(device)
    n, k = batch.num_sequences, vim.config.num_slots
    start = counterfactual(vim, frames, torch.zeros(n, 1, k, dtype=torch.long))
    start_pos = start["start_positions"].cpu().numpy()
    true = batch.positions
    matching = metrics.match_objects_to_slots(true[:, 0], start_pos)          # (N, O)
    rule_module = np.array([assignment[r] for r in range(len(MOVES))])
    modules = np.zeros((n, horizon, k), dtype=np.int64)
    moves = batch.moves[:, :horizon, :, 0]                                    # (N, H, O)
    for o in range(matching.shape[1]):
        modules[np.arange(n), :, matching[:, o]] = rule_module[moves[:, :, o]]
    out = counterfactual(vim, frames, torch.from_numpy(modules).to(device))
    pos = out["positions"].cpu().numpy()                                      # (N, H, K, 2)
    idx = np.broadcast_to(matching[:, None, :, None], (n, horizon, matching.shape[1], 2))
    err = np.linalg.norm(np.take_along_axis(pos, idx, 2) - true[:, 1:horizon + 1], axis=-1)
    start_err = np.linalg.norm(np.take_along_axis(start_pos, matching[..., None].repeat(2, -1),
                                                  1) - true[:, 0], axis=-1)
    per_step = err.mean(axis=(0, 2))
    return {"per_step": per_step.tolist(), "mean": float(per_step.mean()),
            "start": float(start_err.mean()), "horizon": horizon}


def move_frequencies(displacements, positions, step: float, low, high) -> Dict[str, Any]:
    """Classify displacements to the nearest move and count them, away from and at the walls.

    Args:
        displacements: (..., 2) sampled displacements in pixels.
        positions: (..., 2) positions the displacements start from (same leading shape).
        step: the data's move in pixels; a move is legal when ``low <= pos + step * v <= high``.
        low, high: (..., 2) or (2,) bounds of the legal centre positions (pixels).

    Returns:
        ``away`` {move: frequency} for starts where every move is legal, ``away_count``,
        ``max_deviation`` (max |frequency - 1/4| away from the walls), ``at_walls_count`` and
        ``impossible_at_walls`` (fraction of samples at a wall whose move would leave the
        frame); the sizes, over all samples: ``mean_step`` (mean length of the displacements,
        pixels; the data's is ``step``) and ``move_error`` (mean distance from each displacement
        to the nearest of the data's four moves, pixels: 0 when every sample is a data move).
    """
    disp = np.asarray(displacements, dtype=np.float64).reshape(-1, 2)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if disp.shape != pos.shape:
        raise ValueError(f"displacements and positions must have the same shape, got "
                         f"{disp.shape} and {pos.shape}")
    low = np.broadcast_to(np.asarray(low, dtype=np.float64), np.asarray(positions).shape)
    high = np.broadcast_to(np.asarray(high, dtype=np.float64), np.asarray(positions).shape)
    low, high = low.reshape(-1, 2), high.reshape(-1, 2)
    vectors = MOVE_VECTORS.astype(np.float64)
    move = np.argmax(disp @ vectors.T, axis=1)                      # nearest direction
    cand = pos[:, None, :] + step * vectors[None]                   # (P, 4, 2)
    legal = np.all((cand >= low[:, None] - 1e-6) & (cand <= high[:, None] + 1e-6), axis=-1)
    away = legal.all(axis=1)
    counts = np.bincount(move[away], minlength=4)
    freq = counts / counts.sum() if counts.sum() else np.full(4, np.nan)
    wall = ~away
    impossible = ~legal[np.arange(len(move)), move]
    return {
        "away": {m: float(f) for m, f in zip(MOVES, freq)},
        "away_count": int(away.sum()),
        "max_deviation": float(np.nanmax(np.abs(freq - 0.25))) if counts.sum() else None,
        "at_walls_count": int(wall.sum()),
        "impossible_at_walls": float(impossible[wall].mean()) if wall.any() else None,
        "step": float(step),
        "mean_step": float(np.linalg.norm(disp, axis=1).mean()) if len(disp) else None,
        "move_error": float(np.linalg.norm(disp[:, None] - step * vectors[None], axis=-1)
                            .min(1).mean()) if len(disp) else None,
    }


@torch.no_grad()
def prior_calibration(vim, batch: VideoBatch, num_samples: int = 32,
                      chunk: int = 8) -> Dict[str, Any]:
    """Sample one step ahead from the prior after 2 context frames; count the sampled moves of
    the balls' slots (:func:`move_frequencies`).  The balls' legal range comes from the data
    (their size and the frame).  ``chunk`` videos (times ``num_samples``) are sampled at once."""
    from .infer import match_predicted_slots, predict
    if batch.seq_len < 2:
        raise ValueError("prior_calibration needs sequences of at least 2 frames")
    device = next(vim.parameters()).device
    displacements = []
    for i in range(0, batch.num_sequences, chunk):
        part = batch[i:i + chunk]
        context = torch.from_numpy(part.frames[:, :2]).to(device)
        pred = predict(vim, context, horizon=1, num_samples=num_samples)
        matching = match_predicted_slots(pred, part.positions[:, 1])     # (S, n, O)
        take = matching[..., None].repeat(2, -1)
        pos = pred["positions"][:, :, 0].cpu().numpy()                   # (S, n, K, 2)
        ctx = pred["context_positions"].cpu().numpy()
        displacements.append(np.take_along_axis(pos, take, 2) - np.take_along_axis(ctx, take, 2))
    disp = np.concatenate(displacements, axis=1)                         # (S, N, O, 2)
    start = np.broadcast_to(batch.positions[:, 1], disp.shape)           # last context frame
    half = np.asarray(batch.attributes["size"], dtype=np.float64)         # (N, O)
    low = np.broadcast_to(np.stack([half, half], -1), disp.shape)
    high = batch.image_size - 1 - low
    return move_frequencies(disp, start, float(batch.config.get("step", 1)), low, high)


@torch.no_grad()
def composition_errors(vim, batch: VideoBatch, iterations: int = 8,
                       chunk: int = 32) -> Dict[str, Any]:
    """VIM-k on compositions (Fig. 5): between two frames each ball makes several atomic moves;
    the model applies up to ``iterations`` modules per transition (``vim.infer(frames,
    iterations=k)``, a module choice per iteration, or "stay").  Balls are matched to slots on
    frame 0; the error is the distance in pixels between the slot's position after iteration i
    (modules only, no correction by the observation) and the ball's true position on the next
    frame, averaged over balls, transitions and videos.

    Returns ``per_iteration`` (k errors), ``final`` (after the last iteration), ``start`` (the
    ball's displacement: the error of not moving), ``by_moves`` {number of moves: final error}
    and ``iterations``.
    """
    device = next(vim.parameters()).device
    positions, iteration_positions = [], []
    for i in range(0, batch.num_sequences, chunk):
        out = vim.infer(torch.from_numpy(batch.frames[i:i + chunk]).to(device),
                        iterations=iterations)
        positions.append(out["positions"][:, 0].cpu().numpy())
        iteration_positions.append(out["iteration_positions"].cpu().numpy())
    start = np.concatenate(positions)                                   # (N, K, 2)
    its = np.concatenate(iteration_positions)                           # (N, T-1, k, K, 2)
    true = batch.positions                                              # (N, T, O, 2)
    n, steps, k = its.shape[:3]
    matching = metrics.match_objects_to_slots(true[:, 0], start)        # (N, O)
    o = matching.shape[1]
    take = np.broadcast_to(matching[:, None, None, :, None], (n, steps, k, o, 2))
    track = np.take_along_axis(its, take, 3)                            # (N, T-1, k, O, 2)
    err = np.linalg.norm(track - true[:, 1:, None], axis=-1)            # (N, T-1, k, O)
    stand = np.linalg.norm(true[:, 1:] - true[:, :-1], axis=-1)         # (N, T-1, O)
    count = (batch.moves >= 0).sum(-1)                                  # (N, T-1, O)
    by_moves = {int(c): float(err[..., -1, :][count == c].mean()) for c in np.unique(count)}
    per_iteration = err.astype(np.float64).mean(axis=(0, 1, 3)).tolist()
    return {"per_iteration": per_iteration, "final": per_iteration[-1],
            "start": float(stand.mean()), "by_moves": by_moves, "iterations": k}


@torch.no_grad()
def transfer_errors(vim, target: VideoBatch, source_generator, chunk: int = 16
                    ) -> Dict[str, Any]:
    """Dynamics transfer (Fig. 7): the rules recognised on ``target`` (e.g. unseen objects) are
    replayed on known objects drawn by ``source_generator.render`` at the targets' frame-0
    positions (:func:`pyro_vim.infer.transfer`).  Each target object is matched to the source
    slot nearest to it on frame 0; the error is the distance in pixels between that slot's
    transferred position and the target object's true position, by horizon.

    Returns ``per_step`` (T-1 errors), ``mean`` (over the horizon), ``start`` (slot vs object on
    frame 0) and ``displacement_mean`` (the same with each track's frame-0 offset removed)."""
    from .infer import transfer
    device = next(vim.parameters()).device
    pos_parts, start_parts = [], []
    for i in range(0, target.num_sequences, chunk):
        part = target[i:i + chunk]
        source = source_generator.render(part.positions[:, 0])
        out = transfer(vim, torch.from_numpy(part.frames).to(device),
                       torch.from_numpy(source).to(device))
        pos_parts.append(out["positions"].cpu().numpy())
        start_parts.append(out["start_positions"].cpu().numpy())
    pos, start = np.concatenate(pos_parts), np.concatenate(start_parts)   # (N,T-1,K,2), (N,K,2)
    true = target.positions
    n, steps = pos.shape[:2]
    matching = metrics.match_objects_to_slots(true[:, 0], start)
    o = matching.shape[1]
    track = np.take_along_axis(pos, np.broadcast_to(matching[:, None, :, None],
                                                    (n, steps, o, 2)), 2)   # (N, T-1, O, 2)
    first = np.take_along_axis(start, matching[..., None].repeat(2, -1), 1)  # (N, O, 2)
    err = np.linalg.norm(track - true[:, 1:], axis=-1)
    disp = np.linalg.norm((track - first[:, None]) - (true[:, 1:] - true[:, :1]), axis=-1)
    per_step = err.mean(axis=(0, 2))
    return {"per_step": per_step.tolist(), "mean": float(per_step.mean()),
            "start": float(np.linalg.norm(first - true[:, 0], axis=-1).mean()),
            "displacement_mean": float(disp.mean())}


def placeable(batch: VideoBatch, generator) -> np.ndarray:
    """Indices of the videos whose frame-0 positions ``generator.render`` can draw at."""
    shape_id, size = generator._kinds()[0]
    st = generator._stencil(shape_id, size)
    lo = np.array([-st[:, 1].min(), -st[:, 0].min()])
    hi = generator.image_size - 1 - np.array([st[:, 1].max(), st[:, 0].max()])
    ok = np.all((batch.positions[:, 0] >= lo) & (batch.positions[:, 0] <= hi), axis=(1, 2))
    return np.flatnonzero(ok)


def composition_test_batch(config, sequences: int, seq_len: int, seed: int) -> VideoBatch:
    """Held-out Compositional Random Walk (1-5 moves per frame) with ``config``'s other data
    settings (Fig. 5's test data)."""
    test = config.replace(data={"name": "compositional", "min_moves": 1, "max_moves": 5})
    return test.make_generator().generate(sequences, seq_len, seed)


def transfer_test_batch(config, sequences: int, seq_len: int, seed: int) -> VideoBatch:
    """Held-out unseen objects (OOD shapes, colours, sizes; the config's step and count) whose
    frame-0 positions the training generator can draw at (Fig. 7's targets)."""
    ood = config.replace(data={"name": "ood"})
    targets = ood.make_generator().generate(2 * sequences, seq_len, seed)
    return targets[placeable(targets, config.make_generator())[:sequences]]
