"""What a trained RIM or SCOFF does with its units: is its error the dynamics' or perception's?

    python benchmarks/baseline_diagnosis.py runs/table1/rim@15min/seed=0/checkpoint.pt

On held-out videos of the checkpoint's own data (``--sequences`` of 5 frames, seed
``--seed``) it prints, per frame summed over pixels and channels:

* the teacher-forced error (Table 1's row) beside the empty frame and the previous frame;
* the perception error: each frame read once from the initial state and decoded (what the
  single-frame pre-training trains), a floor for the prediction;
* where the units are: their mask centroids against the true positions at the frame they last
  read (:func:`pyro_vim.baselines.table1.unit_centroid_errors`), and the share of object units
  whose decoder sits within one pixel of the frame's border (a saturated ``tanh`` position).

Written for issue 32's diagnosis (``docs/baselines.md``, 2026-12-07): the first reworked RIM
decoded every object unit in the frame's corner and reconstructed single frames no better than
the empty frame.  Prints JSON and, with ``--out FILE``, writes it.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.baselines.table1 import squared_errors, unit_centroid_errors  # noqa: E402
from pyro_vim.files import write_json  # noqa: E402
from pyro_vim.models import load_model  # noqa: E402


def diagnose(model, batch) -> dict:
    frames = torch.from_numpy(batch.frames).float()
    size = model.config.image_size

    def per_frame(pred, truth):
        return float(squared_errors(pred, truth).mean())

    model.eval()
    with torch.no_grad():
        out = model.infer(frames)
        perceived = model.reconstruct(frames)
    pos = out["positions"][:, 1:, 1:].numpy()                   # object units, frames 1..
    border = (pos < 1.0) | (pos > size - 2.0)
    return {
        "teacher_forced": per_frame(out["recon"][:, 1:], frames[:, 1:]),
        "empty_frame": per_frame(torch.zeros_like(frames[:, 1:]), frames[:, 1:]),
        "previous_frame": per_frame(frames[:, :-1], frames[:, 1:]),
        "perception": per_frame(perceived, frames),
        "unit_centroids": unit_centroid_errors(model, batch),
        "object_units_at_the_border": float(np.mean(border.any(-1))),
        "settings": {k: v for k, v in getattr(model, "settings", {}).items()},
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--sequences", type=int, default=64)
    p.add_argument("--seed", type=int, default=12345)
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.checkpoint)
    if not getattr(model, "teacher_forced", False):
        p.error(f"{args.checkpoint} holds a {type(model).__name__}; this diagnoses the "
                "teacher-forced baselines (RIM, SCOFF)")
    batch = model.config.make_generator().generate(args.sequences, 5, args.seed)
    result = diagnose(model, batch)
    print(json.dumps(result, indent=1))
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
