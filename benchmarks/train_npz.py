"""Time ``python -m pyro_vim.train --data DIR`` on 32x32 recorded videos with the cpu preset.

    python benchmarks/train_npz.py --out runs/npz_timing                      # whole schedule
    python benchmarks/train_npz.py --out runs/npz_50 --steps 50 --threads 1   # a short estimate

``--generated`` times the same run on generated videos, the baseline to compare with on the same
machine.  Writes OUT/shards once: frames-only uint8 shards of Random Walk videos (``--videos`` of
``--frames`` frames, 256 a shard; no ``dataset.json`` unless ``--dataset-json``, so the command
measures the objects' size and step), then trains OUT/run with the cpu preset in a child
process with ``--threads`` threads, and writes OUT/timing.json.  The goal: the whole schedule
(400 pre-training steps, then 800 dynamics steps: 500 of 4 frames and 300 of 6) within 25
minutes on two cores.

Without ``--steps`` the whole schedule is trained, and the wall-clock time is the answer.  With
``--steps N`` a third of N are pre-training steps and the rest dynamics steps, the first half of
them of 4 frames and the second half of 6 (``seq_len_every`` and ``eval_every`` set to that
half); the evaluation in the middle is timed as the log's clock minus the checkpoint's
``elapsed_s``.  The whole schedule is then projected from the median seconds per step of each
kind, 7 such evaluations (every 100 dynamics steps; the last one and the final report fall in
the command's start and finish, measured as its wall-clock time minus the log's clock).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from pyro_vim.checkpoint import load_checkpoint  # noqa: E402
from pyro_vim.config import VIMConfig  # noqa: E402
from pyro_vim.data import RandomWalk  # noqa: E402
from pyro_vim.data.shards import write_frames_shard  # noqa: E402

PER_SHARD = 256
GOAL_MINUTES = 25.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the shards, the run and the timing")
    p.add_argument("--videos", type=int, default=1024)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--dataset-json", action="store_true",
                   help="declare the sizes (7 px balls, 3 px moves) instead of measuring them")
    p.add_argument("--steps", type=int, default=None,
                   help="a short run of this many steps, projected to the whole schedule")
    p.add_argument("--generated", action="store_true",
                   help="the same run on generated Random Walk videos (no shards): the baseline "
                        "to compare with on the same machine")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="more config overrides (e.g. tiny sizes in tests)")
    args = p.parse_args(argv)
    for name in ("videos", "frames", "image_size", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.steps is not None and args.steps < 6:
        p.error("--steps must be at least 6 (pre-training, 4-frame and 6-frame steps)")
    return args


def write_shards(folder: str, videos: int, frames: int, size: int, declare: bool) -> str:
    """Random Walk videos (3 balls of radius 3 moving 3 px) as uint8 frames-only shards."""
    if not os.path.isdir(folder):
        generator = RandomWalk(image_size=size)
        for i, start in enumerate(range(0, videos, PER_SHARD)):
            n = min(PER_SHARD, videos - start)
            batch = generator.generate(n, frames, seed=i)
            write_frames_shard(os.path.join(folder, f"part-{i:03d}.npz"),
                               np.round(batch.frames * 255).astype(np.uint8))
    json_path = os.path.join(folder, "dataset.json")
    if declare:
        with open(json_path, "w") as f:
            json.dump({"object_size": 7, "step": 3}, f)
    elif os.path.exists(json_path):
        os.unlink(json_path)
    return folder


def step_times(log_path: str):
    """Seconds of each step (differences of the log's clock) by kind: pretrain, dyn<T>."""
    with open(log_path) as f:
        records = [json.loads(line) for line in f]
    kinds, last = {}, 0.0
    for r in records:
        kind = "pretrain" if r["phase"] == "pretrain" else f"dyn{r['seq_len']}"
        kinds.setdefault(kind, []).append(r["time"] - last)
        last = r["time"]
    return {k: statistics.median(v[1:] or v) for k, v in kinds.items()}, last


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    shards = None if args.generated else write_shards(
        os.path.join(args.out, "shards"), args.videos, args.frames, args.image_size,
        args.dataset_json)
    run = os.path.join(args.out, "run")
    if os.path.exists(os.path.join(run, "checkpoint.pt")):
        raise SystemExit(f"error: {run} holds a run already; choose another --out")
    cpu = VIMConfig.preset("cpu")
    data = ["--set", f"image_size={args.image_size}"] if args.generated else ["--data", shards]
    cmd = [sys.executable, "-m", "pyro_vim.train", *data, "--out", run,
           "--preset", "cpu", "--device", "cpu", "--no-progress", "--tensorboard", "off"]
    if args.steps is not None:
        pre = args.steps // 3
        every = (args.steps - pre) // 2          # dynamics: `every` steps of 4 frames, then 6
        cmd += ["--pretrain-steps", str(pre), "--steps", str(pre + 2 * every),
                "--set", f"seq_len_every={every}", f"eval_every={every}"]
    if args.overrides:
        cmd += ["--set", *args.overrides]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]))
    start = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"error: the training command failed:\n{done.stderr[-3000:]}")
    medians, trained = step_times(os.path.join(run, "log.jsonl"))
    elapsed = float(load_checkpoint(os.path.join(run, "checkpoint.pt"))["elapsed_s"])
    result = {"command": " ".join(cmd), "threads": args.threads, "wall_s": round(wall, 1),
              "training_s": round(trained, 1), "step_s": {k: round(v, 3)
                                                          for k, v in medians.items()},
              "derived": [line for line in done.stdout.splitlines() if " = " in line
                          or line.startswith("data:")]}
    if args.steps is None:
        result["minutes"] = round(wall / 60, 2)
    else:
        evaluation = trained - elapsed            # the one evaluation inside the log's clock
        overhead = wall - trained                 # start, measurement, final evaluation, exit
        dyn4 = medians.get("dyn4", 0.0)
        dyn6 = medians.get("dyn6", dyn4 * 1.5)
        schedule = (cpu.pretrain_steps * medians.get("pretrain", 0.0) + 500 * dyn4 + 300 * dyn6
                    + (cpu.steps // cpu.eval_every - 1) * evaluation + overhead)
        result.update(evaluation_s=round(evaluation, 2), overhead_s=round(overhead, 1),
                      projected_minutes=round(schedule / 60, 2))
    minutes = result.get("minutes", result.get("projected_minutes"))
    result["within_goal"] = minutes <= GOAL_MINUTES
    with open(os.path.join(args.out, "timing.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
