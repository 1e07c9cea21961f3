"""``table1_samples.png``: Fig. 8-style one-step samples drawn from the runs' checkpoints.

The one part of a report that loads models (torch and Pyro, imported when it runs): the lowest
seed whose RIM, SCOFF and VIM runs of the ``table1`` experiment all kept a checkpoint.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from .figures import _png
from .runs import PathLike

#: Table 1's models, in the order of the Fig. 8-style figure's rows
TABLE1_MODELS = ("rim", "scoff", "vim")


def _table1_samples_png(root: PathLike, groups: Dict[str, Any]) -> Optional[bytes]:
    """Fig. 8-style one-step samples (``table1_samples.png``) of the lowest seed whose RIM,
    SCOFF and VIM runs all kept a checkpoint: one held-out video, the truth, RIM's and SCOFF's
    teacher-forced frames and two samples of VIM's prior (None when there is no such seed)."""
    if not all(v in groups for v in TABLE1_MODELS):
        return None
    base = Path(root) / "table1" if (Path(root) / "table1").is_dir() else Path(root)
    seeds = sorted(set.intersection(*(set(groups[v]["seeds"]) for v in TABLE1_MODELS)))
    for seed in seeds:
        paths = {v: base / v / f"seed={seed}" / "checkpoint.pt" for v in TABLE1_MODELS}
        if all(p.is_file() for p in paths.values()):
            break
    else:
        return None
    import torch

    from ..baselines.table1 import SEQ_LEN, sample_rows
    from ..evaluate import default_seed
    from ..models import load_model
    from ..viz import plot_image_rows
    models = {v.upper(): load_model(str(p)).eval()
              for v, p in paths.items()}
    config = models["VIM"].config
    rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(default_seed(config))
        video = config.make_generator().generate(1, SEQ_LEN, default_seed(config) + 7).frames
        rows = sample_rows(models, video)
    finally:
        torch.random.set_rng_state(rng)
    fig = plot_image_rows(rows, column_titles=[f"t={t}" for t in range(1, SEQ_LEN)],
                          title=f"one step ahead, seed {seed}")
    return _png(fig)
