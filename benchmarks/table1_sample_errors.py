"""Why does a VIM prior sample score below a perfect sampler in Table 1?  Split both errors by
how many balls the sample moved the wrong way.

    python benchmarks/table1_sample_errors.py runs/table1/vim/seed=0/checkpoint.pt [...]

On the held-out Table 1 sequences of each checkpoint (the runner's: 5 frames, data seed
``default_seed(config)``), for every frame t = 1..4 and every sample:

* VIM: :func:`pyro_vim.infer.predict` from frames 0..t-1 (one step, ``--samples`` prior samples);
  each true ball's slot is matched on frame t-1, and the ball counts as *moved right* when the
  slot's sampled displacement is nearest (of the four moves) to the ball's true move;
* the perfect sampler of :func:`pyro_vim.baselines.table1.reference_errors`: true positions at
  t-1, a move drawn uniformly among those that stay in the frame, rendered by the generator.

Printed per checkpoint: the share of balls moved right (both should be near the data's chance),
the mean squared error per frame by the number of balls moved wrong (0..O), and the "ball
energy" sum((x - background)^2) of a true ball and of VIM's reconstruction (inference network,
frame t): a wrong ball costs its own energy plus the true ball's, so a renderer whose balls carry
less energy pays less for each wrong move.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.baselines.table1 import SEQ_LEN, draw_legal_moves, legal_moves  # noqa: E402
from pyro_vim.data import MOVE_VECTORS  # noqa: E402
from pyro_vim.evaluate import default_seed  # noqa: E402
from pyro_vim.infer import match_predicted_slots, predict  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402

VECTORS = MOVE_VECTORS.astype(np.float64)                                # up down left right


def _nearest_move(d):
    """(..., 2) displacements -> (...,) index of the nearest unit move."""
    d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
    return (d[..., None, :] * VECTORS).sum(-1).argmax(-1)


def _by_wrong(se, wrong, num_objects):
    """mean of se for each count 0..O of wrong balls (nan where none), and the counts' shares."""
    out, share = [], []
    for k in range(num_objects + 1):
        sel = wrong == k
        out.append(float(se[sel].mean()) if sel.any() else float("nan"))
        share.append(float(sel.mean()))
    return out, share


@torch.no_grad()
def analyse(checkpoint, num_sequences=64, samples=8, draws=8, seed=0):
    vim = load_model(checkpoint).eval()
    c = vim.config
    gen = c.make_generator()
    batch = gen.generate(num_sequences, SEQ_LEN, default_seed(c))
    frames = torch.as_tensor(batch.frames).float()
    pos = np.asarray(batch.positions, dtype=np.float64)                    # (N, T, O, 2)
    n, t_len, o = pos.shape[:3]
    bg = np.broadcast_to(np.asarray(gen.background, dtype=np.float64), frames.shape[2:])
    truth = frames.double().numpy()
    step = float(batch.config.get("step", getattr(gen, "step", 1)))
    colors = np.asarray(batch.attributes["color"], dtype=np.float32)
    half = np.asarray(batch.attributes["size"], dtype=np.float64)[..., None]
    low, high = half, gen.image_size - 1 - half
    rng = np.random.default_rng(seed)
    vim_se, vim_wrong, vim_len = [], [], []
    ora_se, ora_wrong = [], []
    for t in range(1, t_len):
        true_move = _nearest_move(pos[:, t] - pos[:, t - 1])               # (N, O)
        pred = predict(vim, frames[:, :t], horizon=1, num_samples=samples)
        match = match_predicted_slots(pred, pos[:, t - 1])                  # (S, N, O)
        p = pred["positions"][:, :, 0].cpu().double().numpy()              # (S, N, K, 2)
        p0 = pred["context_positions"].cpu().double().numpy()
        d = np.take_along_axis(p - p0, match[..., None].repeat(2, -1), 2)   # (S, N, O, 2)
        vim_wrong.append((_nearest_move(d) != true_move[None]).sum(-1))     # (S, N)
        vim_len.append(np.linalg.norm(d, axis=-1).ravel())
        img = pred["frames"][:, :, 0].cpu().double().numpy()                # (S, N, 3, H, W)
        vim_se.append(((img - truth[None, :, t]) ** 2).sum(axis=(2, 3, 4)))
        legal = legal_moves(pos[:, t - 1], step, low, high)                # (N, O, 4)
        for _ in range(draws):
            move = draw_legal_moves(legal, rng)
            draw = gen.render(pos[:, t - 1] + step * VECTORS[move], colors).astype(np.float64)
            ora_se.append(((draw - truth[:, t]) ** 2).sum(axis=(1, 2, 3)))
            ora_wrong.append((move != true_move).sum(-1))
    vim_se, vim_wrong = np.concatenate(vim_se, 1), np.concatenate(vim_wrong, 1)
    ora_se, ora_wrong = np.stack(ora_se), np.stack(ora_wrong)
    recon = vim.infer(frames)["recon"].cpu().double().numpy()
    energy_true = float(((truth[:, 1:] - bg) ** 2).sum(axis=(2, 3, 4)).mean() / o)
    energy_vim = float(((recon[:, 1:] - bg) ** 2).sum(axis=(2, 3, 4)).mean() / o)
    mass_true = float(np.abs(truth[:, 1:] - bg).sum(axis=(2, 3, 4)).mean() / o)
    mass_vim = float(np.abs(recon[:, 1:] - bg).sum(axis=(2, 3, 4)).mean() / o)
    inf_se = float(((recon[:, 1:] - truth[:, 1:]) ** 2).sum(axis=(2, 3, 4)).mean())
    vim_by, vim_share = _by_wrong(vim_se, vim_wrong, o)
    ora_by, ora_share = _by_wrong(ora_se, ora_wrong, o)
    return {"checkpoint": checkpoint, "sequences": n, "samples": samples, "draws": draws,
            "vim_sample_se": float(vim_se.mean()), "oracle_sample_se": float(ora_se.mean()),
            "vim_balls_moved_right": float(1 - vim_wrong.mean() / o),
            "oracle_balls_moved_right": float(1 - ora_wrong.mean() / o),
            "vim_sampled_step_px": float(np.concatenate(vim_len).mean()),
            "vim_se_by_wrong_balls": vim_by, "vim_share_by_wrong_balls": vim_share,
            "oracle_se_by_wrong_balls": ora_by, "oracle_share_by_wrong_balls": ora_share,
            "ball_energy_true": energy_true, "ball_energy_vim_reconstruction": energy_vim,
            "ball_mass_true": mass_true, "ball_mass_vim_reconstruction": mass_vim,
            "vim_inference_se": inf_se}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--sequences", type=int, default=64)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--draws", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.sequences < 1 or args.samples < 1 or args.draws < 1:
        ap.error("--sequences, --samples and --draws must be positive")
    torch.set_num_threads(args.threads)
    results = []
    for ck in args.checkpoints:
        r = analyse(ck, args.sequences, args.samples, args.draws)
        results.append(r)
        print(f"{ck}")
        print(f"  squared error per frame: VIM sample {r['vim_sample_se']:.1f}, perfect sampler "
              f"{r['oracle_sample_se']:.1f}; VIM inference {r['vim_inference_se']:.1f}")
        print(f"  balls moved the true way: VIM {r['vim_balls_moved_right']:.3f}, perfect "
              f"sampler {r['oracle_balls_moved_right']:.3f}; VIM's sampled step "
              f"{r['vim_sampled_step_px']:.2f} px")
        for k, (a, b, sa, sb) in enumerate(zip(r["vim_se_by_wrong_balls"],
                                               r["oracle_se_by_wrong_balls"],
                                               r["vim_share_by_wrong_balls"],
                                               r["oracle_share_by_wrong_balls"])):
            print(f"  {k} balls wrong: VIM {a:7.1f} (share {sa:.3f})   perfect sampler "
                  f"{b:7.1f} (share {sb:.3f})")
        print(f"  ball energy sum((x-bg)^2): true {r['ball_energy_true']:.1f}, VIM "
              f"reconstruction {r['ball_energy_vim_reconstruction']:.1f}; ball mass "
              f"sum|x-bg|: true {r['ball_mass_true']:.1f}, VIM "
              f"{r['ball_mass_vim_reconstruction']:.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
