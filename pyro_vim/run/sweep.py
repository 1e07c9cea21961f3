"""Every (variant, seed) run of an experiment, one after another in this process.

``DIR/<experiment>`` belongs to one sweep at a time (a :class:`~pyro_vim.rundir.RunLock`): a
second sweep there is refused while the first lives.  A killed sweep continues where it stopped
when it is run again: complete runs are skipped, a started run resumes from its checkpoint.
Under ``torchrun`` every rank trains each run and rank 0 alone writes and reports.
"""
from __future__ import annotations

import os
import time
from contextlib import nullcontext
from typing import Any, Dict, List, Optional, Sequence

from ..distributed import SINGLE, Context
from ..experiments import Experiment
from ..rundir import RunLock
from .single import _check_config, rescore, run_dir, run_one


def run_experiment(experiment: Experiment, out: str, seeds: Optional[Sequence[int]] = None,
                   variants: Optional[Sequence[str]] = None, overrides: Sequence[str] = (),
                   eval_sequences: int = 64, eval_seq_len: int = 11, progress: bool = False,
                   log=print, reevaluate: bool = False, device=None, precision: str = "fp32",
                   compile: bool = False, distributed: Optional[Context] = None,
                   sweep_lock: bool = True) -> List[Dict[str, Any]]:
    """Every (variant, seed) run of ``experiment`` under ``out`` (a run's folder: :func:`run_dir`);
    with ``reevaluate`` the complete runs are re-scored (:func:`rescore`) and nothing is
    trained."""
    seeds = list(experiment.seeds if seeds is None else seeds)
    variants = list(experiment.variants if variants is None else variants)
    # every config first: a bad key, value or variant fails before anything is written
    plan = [(v, s, experiment.config(v, s, overrides)) for v in variants for s in seeds]
    results = []
    ctx = distributed if distributed is not None else SINGLE
    if not ctx.is_main:
        log = _quiet
    lock = (RunLock(os.path.join(out, experiment.name)) if ctx.is_main and sweep_lock
            else nullcontext())
    with lock:
        for variant, seed, config in plan:
            folder = run_dir(out, experiment.name, variant, seed)
            label = f"{experiment.name}{'/' + variant if variant else ''} seed={seed}"
            done = os.path.exists(os.path.join(folder, "metrics.json"))
            if reevaluate:
                if not done:
                    log(f"[{time.strftime('%H:%M:%S')}] {label}: not complete, skipped")
                    continue
                _check_config(folder, config)
                log(f"[{time.strftime('%H:%M:%S')}] {label}: re-scoring")
                result = rescore(folder, eval_sequences, eval_seq_len, experiment.evaluations,
                                 experiment.eval_data)
            else:
                state = ("done" if done else "resume" if os.path.exists(
                    os.path.join(folder, "checkpoint.pt")) else "start")
                log(f"[{time.strftime('%H:%M:%S')}] {label}: {state}")
                result = run_one(config, folder, eval_sequences, eval_seq_len, progress,
                                 experiment.name, variant, evaluations=experiment.evaluations,
                                 eval_data=experiment.eval_data, device=device,
                                 precision=precision, compile=compile, distributed=ctx)
            if not ctx.is_main:
                continue
            m = result["metrics"]
            if "rule_module_accuracy" in m:
                log(f"[{time.strftime('%H:%M:%S')}] {label}: accuracy "
                    f"{m.get('rule_module_accuracy')}, step error max "
                    f"{m.get('module_step_error_max')}, recon {m.get('recon_mse')}")
            elif config.data.name == "npz" and m.get("accuracy", 0) is None:   # no truth
                log(f"[{time.strftime('%H:%M:%S')}] {label}: recon {m.get('recon_mse')}, "
                    f"kl_z {m.get('kl_z')}, module usage {m.get('module_usage')}")
            else:            # a baseline without modules (G-SWM): its own headline numbers
                log(f"[{time.strftime('%H:%M:%S')}] {label}: recon {m.get('recon_mse')}, MED "
                    f"{m.get('med')}, compositional MED single/multi-step "
                    f"{m.get('compositional_med_single')}/{m.get('compositional_med_multi')}")
            results.append(result)
    return results


def _quiet(*args, **kwargs) -> None:
    """The log of the ranks other than 0 under torchrun (rank 0 reports)."""
