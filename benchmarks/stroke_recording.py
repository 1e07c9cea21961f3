"""Train on a same-coloured stroke recording that no generator here draws, through ``--data``.

    python benchmarks/stroke_recording.py --out runs/strokes            # write, train, score
    python benchmarks/stroke_recording.py --out runs/strokes --write-only

The recording: three seven-segment digits (1-px strokes in a 7x7 box, each video's three digits
different) in one light colour on a dark grey background, 32x32, each moving 2 px up, down,
left or right per frame (a move that would leave the frame is redrawn), starting anywhere, so
that digits touch and overlap.  Nothing here comes from ``pyro_vim.data``'s generators; the
shards are written with :func:`pyro_vim.data.save_npz`, so they carry the true moves and the
digits' pixel centroids, and the trainer's held-out evaluation scores rule identification and
the slots' distance to the objects.  No ``dataset.json`` is written: the training command
measures the objects' size and step itself.  Then ``python -m pyro_vim.train --data
OUT/shards --out OUT/run --preset cpu`` trains in a child process with ``--threads`` threads,
and OUT/result.json holds the derived scales, the minutes and the held-out scores after
pre-training (before learning: untrained modules) and at the end.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from pyro_vim.config import VIMConfig  # noqa: E402
from pyro_vim.data import VideoBatch, save_npz  # noqa: E402

PER_SHARD = 256
BOX = 7
#: Segments of a seven-segment digit as (row0, col0, row1, col1) in a 7x7 box.
SEGMENTS = {"a": (0, 0, 0, 6), "b": (0, 6, 3, 6), "c": (3, 6, 6, 6), "d": (6, 0, 6, 6),
            "e": (3, 0, 6, 0), "f": (0, 0, 3, 0), "g": (3, 0, 3, 6)}
DIGITS = {"2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd", "7": "abc", "9": "abcdfg",
          "6": "afedcg", "E": "afged", "F": "afge", "P": "abfge", "U": "fedcb", "L": "fed"}
#: (dx, dy) of the moves, in the order of pyro_vim.data.MOVES ('up', 'down', 'left', 'right').
MOVES = np.array([(0, -1), (0, 1), (-1, 0), (1, 0)])
FOREGROUND = np.array([0.92, 0.9, 0.8], np.float32)
BACKGROUND = np.array([0.12, 0.12, 0.16], np.float32)


def digit_pixels(name: str) -> np.ndarray:
    """(P, 2) (row, col) offsets of a digit in its box."""
    image = np.zeros((BOX, BOX), bool)
    for s in DIGITS[name]:
        r0, c0, r1, c1 = SEGMENTS[s]
        image[r0:r1 + 1, c0:c1 + 1] = True
    return np.argwhere(image)


def record(videos: int, frames: int, size: int = 32, objects: int = 3, step: int = 2,
           seed: int = 0) -> VideoBatch:
    rng = np.random.default_rng(seed)
    names = sorted(DIGITS)
    stencils = [digit_pixels(n) for n in names]
    frames_out = np.empty((videos, frames, 3, size, size), np.float32)
    frames_out[:] = BACKGROUND[None, None, :, None, None]
    positions = np.zeros((videos, frames, objects, 2), np.float32)
    moves = np.zeros((videos, frames - 1, objects, 1), np.int64)
    masks = np.zeros((videos, frames, objects, size, size), bool)
    shapes = np.zeros((videos, objects), np.int64)
    for n in range(videos):
        kinds = rng.choice(len(names), size=objects, replace=False)
        shapes[n] = kinds
        corner = rng.integers(0, size - BOX + 1, size=(objects, 2))     # (x, y) of the box
        for t in range(frames):
            for o, k in enumerate(kinds):
                pix = stencils[k] + corner[o][::-1]                      # (row, col)
                masks[n, t, :, pix[:, 0], pix[:, 1]] = False            # later digits on top
                masks[n, t, o, pix[:, 0], pix[:, 1]] = True
                frames_out[n, t, :, pix[:, 0], pix[:, 1]] = FOREGROUND[None, :]
                positions[n, t, o] = pix[:, ::-1].mean(0)                # (x, y) centroid
            if t == frames - 1:
                break
            for o in range(objects):
                while True:
                    m = int(rng.integers(len(MOVES)))
                    new = corner[o] + step * MOVES[m]
                    if (new >= 0).all() and (new <= size - BOX).all():
                        break
                corner[o] = new
                moves[n, t, o, 0] = m
    attributes = {"color": np.broadcast_to(FOREGROUND, (videos, objects, 3)).copy(),
                  "shape": shapes, "size": np.full((videos, objects), BOX, np.int64)}
    config = {"recording": "seven-segment digits (benchmarks/stroke_recording.py)",
              "image_size": size, "num_objects": objects, "step": step, "seed": seed,
              "num_sequences": videos, "seq_len": frames}
    return VideoBatch(frames_out, positions, moves, masks, attributes, config)


def write_shards(folder: str, videos: int, frames: int) -> str:
    if not os.path.isdir(folder):
        os.makedirs(folder + ".tmp", exist_ok=True)
        for i, start in enumerate(range(0, videos, PER_SHARD)):
            batch = record(min(PER_SHARD, videos - start), frames, seed=1000 + i)
            save_npz(batch, os.path.join(folder + ".tmp", f"part-{i:03d}.npz"))
        os.replace(folder + ".tmp", folder)
    return folder


def run(cmd, env):
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--videos", type=int, default=1024)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-only", action="store_true")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="more config overrides (e.g. tiny sizes in tests)")
    p.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--eval-videos", type=int, default=64)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    shards = write_shards(os.path.join(args.out, "shards"), args.videos, args.frames)
    held_out = os.path.join(args.out, "held_out.npz")
    if not os.path.exists(held_out):                 # videos the training never sees
        save_npz(record(args.eval_videos, 11, seed=999), held_out)
    if args.write_only:
        return {"shards": shards, "held_out": held_out}
    out = os.path.join(args.out, "run")
    if os.path.exists(os.path.join(out, "checkpoint.pt")):
        raise SystemExit(f"error: {out} holds a run already; choose another --out")
    pre = args.pretrain_steps if args.pretrain_steps is not None \
        else VIMConfig.preset("cpu").pretrain_steps
    cmd = [sys.executable, "-m", "pyro_vim.train", "--data", shards, "--out", out,
           "--preset", "cpu", "--seed", str(args.seed), "--no-progress", "--tensorboard", "off",
           "--pretrain-steps", str(pre)]
    if args.overrides:
        cmd += ["--set", *args.overrides]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    start = time.time()
    stdout = run(cmd + ["--steps", str(pre)], env)             # perception pre-training only
    shutil.copy(os.path.join(out, "checkpoint.pt"), os.path.join(args.out, "pretrained.pt"))
    rest = ["--resume"] + (["--steps", str(args.steps)] if args.steps is not None else [])
    run(cmd + rest, env)
    minutes = (time.time() - start) / 60
    scores = {}
    for name, checkpoint in (("before_learning", os.path.join(args.out, "pretrained.pt")),
                             ("trained", os.path.join(out, "checkpoint.pt"))):
        folder = os.path.join(args.out, f"eval_{name}")
        run([sys.executable, "-m", "pyro_vim.evaluate", checkpoint, "--data", held_out,
             "--out", folder], env)
        with open(os.path.join(folder, "metrics.json")) as f:
            scores[name] = json.load(f)
    def summary(m):
        return {"rule_module_accuracy": m["rule_module_accuracy"],
                "track_rule_module_accuracy": m["track_rule_module_accuracy"],
                "nmi": m["nmi"], "slot_distance_px": m["position_error"]["mean"],
                "module_step_error_max_px": m["module_step_error_max"],
                "rollout_error_mean_px": m["rollout_error_mean"]}

    result = {"command": " ".join(cmd), "threads": args.threads,
              "training_minutes": round(minutes, 2),
              "derived": [line for line in stdout.splitlines()
                          if " = " in line or line.startswith("data:")],
              **{name: summary(m) for name, m in scores.items()}}
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
