"""How often do bouncing balls collide?  Event statistics of ``data.name = "bouncing"``.

    python benchmarks/bouncing_stats.py [--num-sequences 10000] [--seq-len 11] [--seed 0] \\
        [--num-objects 3] [--radius 3] [--speed 2] [--image-size 32] [--compare]

For one setting (default: the generator's defaults, 3 balls of radius 3 at 2 px/frame in
32x32 frames) it generates ``--num-sequences`` videos and prints one JSON line: the share of
videos with at least one ball-ball collision within the first ``k`` transitions for every
``k`` (``collision_videos_by_transitions``, so one run gives the answer for every video length:
``k = 9`` is a 10-frame video), the same for wall bounces, the share of ball-transitions of each
event label (free / wall / collision, :data:`pyro_vim.data.BOUNCING_EVENTS`) and the
generation time.  ``--compare`` adds the settings proposed when collisions are rare (4 balls;
speed 2.5).  A share below 30 % of videos would give a model few collisions to learn from.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.data import BOUNCING_EVENTS, BouncingBalls  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-sequences", type=int, default=10_000)
    p.add_argument("--seq-len", type=int, default=11, help="frames (default 11: 10 transitions)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-objects", type=int, default=3)
    p.add_argument("--radius", type=int, default=3)
    p.add_argument("--speed", type=float, default=2.0)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--compare", action="store_true",
                   help="also measure 4 balls, and speed 2.5, with the other settings kept")
    return p.parse_args(argv)


def statistics(num_objects, radius, speed, image_size, num_sequences, seq_len, seed):
    gen = BouncingBalls(num_objects=num_objects, radius=radius, speed=speed,
                        image_size=image_size)
    start = time.perf_counter()
    batch = gen.generate(num_sequences, seq_len, seed)
    seconds = time.perf_counter() - start
    hits = batch.extra["collisions"].any(axis=(-1, -2))            # (N, T-1)
    walls = batch.extra["wall_bounces"].any(axis=-1)               # (N, T-1)
    by_k = {k: float(np.logical_or.accumulate(hits, axis=1)[:, k - 1].mean())
            for k in range(1, seq_len)}
    walls_by_k = {k: float(np.logical_or.accumulate(walls, axis=1)[:, k - 1].mean())
                  for k in range(1, seq_len)}
    labels = np.bincount(batch.moves.ravel(), minlength=len(BOUNCING_EVENTS))
    pairs = batch.extra["collisions"].sum(axis=(-1, -2)) // 2     # colliding pairs (N, T-1)
    share = by_k[seq_len - 1]
    return {
        "setting": {"num_objects": num_objects, "radius": radius, "speed": speed,
                    "image_size": image_size},
        "num_sequences": num_sequences, "seq_len": seq_len, "seed": seed,
        "collision_videos_by_transitions": by_k,
        "collision_videos_se": float(np.sqrt(share * (1 - share) / num_sequences)),
        "wall_videos_by_transitions": walls_by_k,
        "collisions_per_video": float(pairs.sum(axis=1).mean()),
        "label_shares": {name: float(c / labels.sum())
                         for name, c in zip(BOUNCING_EVENTS, labels)},
        "generate_s": round(seconds, 3),
    }


def main(argv=None):
    args = parse_args(argv)
    base = dict(num_objects=args.num_objects, radius=args.radius, speed=args.speed,
                image_size=args.image_size)
    settings = [base]
    if args.compare:
        settings += [{**base, "num_objects": base["num_objects"] + 1},
                     {**base, "speed": 2.5}]
    results = []
    for setting in settings:
        result = statistics(**setting, num_sequences=args.num_sequences, seq_len=args.seq_len,
                            seed=args.seed)
        result["machine"] = platform.machine()
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
