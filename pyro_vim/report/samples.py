"""``table1_samples.png``: Fig. 8-style one-step samples drawn from the runs' checkpoints.

The one part of a report that loads models (torch and Pyro, imported when it runs): the lowest
seed whose RIM, SCOFF and VIM runs of the ``table1`` experiment all kept a checkpoint.  Each
family's run is its longest-trained variant present (``@converged``, then ``@60min``, then
``@15min``; a plain ``rim`` folder of a sweep from before the budgets were variants last).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

from .figures import _png
from .runs import PathLike

#: Table 1's models, in the order of the Fig. 8-style figure's rows
TABLE1_MODELS = ("rim", "scoff", "vim")
#: Which variant of a family the figure draws, first found first.
TABLE1_PREFERENCE = ("@converged", "@60min", "@15min", "")


def _pick(groups: Dict[str, Any], family: str) -> Optional[str]:
    for suffix in TABLE1_PREFERENCE:
        if family + suffix in groups:
            return family + suffix
    return None


def _table1_samples_png(root: PathLike, groups: Dict[str, Any]) -> Optional[bytes]:
    """Fig. 8-style one-step samples (``table1_samples.png``) of the lowest seed whose RIM,
    SCOFF and VIM runs all kept a checkpoint: one held-out video, the truth, RIM's and SCOFF's
    teacher-forced frames and two samples of VIM's prior (None when there is no such seed)."""
    chosen = {family: _pick(groups, family) for family in TABLE1_MODELS}
    if any(v is None for v in chosen.values()):
        return None
    base = Path(root) / "table1" if (Path(root) / "table1").is_dir() else Path(root)
    seeds = sorted(set.intersection(*(set(groups[v]["seeds"]) for v in chosen.values())))
    for seed in seeds:
        paths = {family: base / v / f"seed={seed}" / "checkpoint.pt"
                 for family, v in chosen.items()}
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
                          title=f"one step ahead, seed {seed} ({', '.join(chosen.values())})")
    return _png(fig)
