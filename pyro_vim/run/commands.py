"""The runner command that regenerates recorded runs (:func:`runner_command`).

A run's folder holds its whole config (``config.json``); the experiment builds the config its
plain command would train (:meth:`~pyro_vim.experiments.Experiment.config`).  What differs
(but the seed) becomes ``--set key=value`` (:func:`overrides_for`), seeds other than the
experiment's become ``--seeds``, and the run's precision ``--precision``.
"""
from __future__ import annotations

import json
import shlex
from typing import Any, List, Optional, Sequence

from ..checkpoint import config_differences
from ..config import FLAT_NAMES, VIMConfig
from ..experiments import EXPERIMENTS


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def overrides_for(experiment: str, variant: str, saved: VIMConfig) -> Optional[List[str]]:
    """The ``--set`` overrides that turn ``experiment``'s config of ``variant`` (at the saved
    seed) into ``saved``; ``None`` when the experiment or variant is unknown."""
    exp = EXPERIMENTS.get(experiment)
    if exp is None or variant not in exp.variants:
        return None
    diff = config_differences(saved, exp.config(variant, saved.seed))
    sets = []
    for key, (theirs, _) in sorted(diff.items()):
        if key == "seed":
            continue
        section, _, name = key.rpartition(".")
        short = name if section and FLAT_NAMES.get(name) == section else key
        sets.append(f"{short}={_value(theirs)}")
    return sets


def runner_command(experiment: str, out: str, variant: str = "",
                   seeds: Optional[Sequence[int]] = None, sets: Sequence[str] = (),
                   precision: str = "fp32", threads: Optional[int] = None) -> str:
    """``python -m pyro_vim.run EXPERIMENT --out OUT ...``, shell-quoted; ``--variants`` only
    for an experiment with variants, ``--seeds`` only when they are not the experiment's."""
    parts = ["python", "-m", "pyro_vim.run", experiment, "--out", out]
    exp = EXPERIMENTS.get(experiment)
    if variant and (exp is None or len(exp.variants) > 1):
        parts += ["--variants", variant]
    if seeds is not None and (exp is None or sorted(seeds) != sorted(exp.seeds)):
        parts += ["--seeds", ",".join(str(s) for s in seeds)]
    if precision and precision != "fp32":
        parts += ["--precision", precision]
    if threads is not None:
        parts += ["--threads", str(threads)]
    if sets:
        parts += ["--set", *sets]
    return " ".join(shlex.quote(p) for p in parts)
