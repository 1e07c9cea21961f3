"""Command line: generate a dataset and write it with a preview.

    python -m pyro_vim.data --dataset random_walk --num-sequences 64 --seq-len 10 \\
        --seed 0 --out out/random_walk
    python -m pyro_vim.data --dataset glyphs --step 2 --out out/glyphs

writes ``OUT/dataset.npz`` (see :func:`pyro_vim.data.save_npz`), ``OUT/preview.png`` (a few
sequences x frames with the true moves drawn as arrows; for ``--dataset bouncing`` each ball's
velocity) and ``OUT/preview.gif`` (the same sequences animated side by side). Invalid
arguments exit with status 2 and write nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from pyro_vim.data.io import save_npz
from pyro_vim.data.random_walk import DATASETS, make_dataset

PREVIEW_SEQUENCES = 4
PREVIEW_FRAMES = 8


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyro_vim.data",
        description="Generate a Random Walk video dataset (VIM paper, Sec. 5; or same-coloured "
                    "glyphs on the same walk) or bouncing balls, with a preview.",
    )
    parser.add_argument("--dataset", required=True, choices=list(DATASETS),
                        help="which generator to use")
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (created if missing)")
    parser.add_argument("--num-sequences", type=int, default=64, help="videos (default 64)")
    parser.add_argument("--seq-len", type=int, default=10, help="frames per video (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed >= 0 (default 0)")
    parser.add_argument("--num-objects", type=int, default=3, help="objects per video")
    parser.add_argument("--image-size", type=int, default=32, help="frame side in pixels")
    parser.add_argument("--step", type=int, default=None,
                        help="pixels per atomic move (default 3)")
    parser.add_argument("--max-moves", type=int, default=argparse.SUPPRESS,
                        help="compositional only: most atomic moves per transition (default 5)")
    parser.add_argument("--object-size", type=int, default=argparse.SUPPRESS,
                        help="glyphs only: side of a glyph's box in pixels (default 8)")
    parser.add_argument("--min-separation", type=_optional_int, default=argparse.SUPPRESS,
                        help="glyphs only: first-frame gap between objects' boxes in pixels, "
                             "'none' for unconstrained (default 1: apart)")
    parser.add_argument("--max-separation", type=_optional_int, default=argparse.SUPPRESS,
                        help="glyphs only: each object starts at most this far from an earlier "
                             "one (0: touching or overlapping, with --min-separation none; "
                             "default none)")
    parser.add_argument("--radius", type=int, default=argparse.SUPPRESS,
                        help="random_walk, compositional, bouncing: ball radius in pixels "
                             "(default 3)")
    parser.add_argument("--speed", type=float, default=argparse.SUPPRESS,
                        help="bouncing only: pixels per frame (default 2)")
    return parser


def _optional_int(text: str):
    """An int, or ``"none"`` for None (argparse turns the ValueError into a usage error)."""
    return None if text.lower() == "none" else int(text)


#: Options that only one generator reads: generator keyword -> that generator.
_ONLY_FOR = {"max_moves": "compositional", "object_size": "glyphs",
             "min_separation": "glyphs", "max_separation": "glyphs", "speed": "bouncing"}


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    kwargs = {"num_objects": args.num_objects, "image_size": args.image_size}
    if args.step is not None:
        kwargs["step"] = args.step
    for key, dataset in _ONLY_FOR.items():
        if key in vars(args):                       # given (these options default to absent)
            if args.dataset != dataset:
                parser.error(f"--{key.replace('_', '-')} only applies to --dataset {dataset}")
            kwargs[key] = getattr(args, key)
    if "radius" in vars(args):
        if args.dataset in ("ood", "glyphs"):
            parser.error(f"--radius does not apply to --dataset {args.dataset} (its objects "
                         "take their own sizes)")
        kwargs["radius"] = args.radius
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")
    try:
        generator = make_dataset(args.dataset, **kwargs)
        batch = generator.generate(args.num_sequences, args.seq_len, args.seed)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))

    from pyro_vim.viz import plot_sequence_with_moves, save_gif

    args.out.mkdir(parents=True, exist_ok=True)
    npz = save_npz(batch, args.out / "dataset.npz")
    png = plot_sequence_with_moves(
        batch, num_sequences=PREVIEW_SEQUENCES, max_frames=PREVIEW_FRAMES,
        path=args.out / "preview.png",
    )
    shown = min(PREVIEW_SEQUENCES, len(batch))
    gif = save_gif([batch.frames[i] for i in range(shown)], args.out / "preview.gif")
    print(
        f"wrote {npz} ({batch.config['name']}: {batch.num_sequences} sequences x "
        f"{batch.seq_len} frames, {batch.num_objects} objects, "
        f"{batch.image_size}x{batch.image_size} px, seed {args.seed})"
    )
    drawn = "velocities" if "velocities" in batch.extra else "moves"
    print(f"wrote {png} ({shown} sequences, {drawn} drawn as arrows)")
    print(f"wrote {gif} ({shown} sequences side by side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
