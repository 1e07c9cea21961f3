"""The plan of a sweep before it runs: every (experiment, variant, seed), its state, and an
estimate of its training minutes that says what it rests on (:func:`plan_runs`).

An estimate is never made up.  In order, a run's training minutes are

* for a complete run, the minutes it recorded (nothing is left to train);
* ``time_budget_s / 60`` when its config has a wall-clock budget (an upper bound: training
  stops at the budget or at its last step), whatever the machine;
* otherwise the mean training minutes of the complete runs in the same folder with the same
  settings but the seed (the variant's other seeds), with the number of those runs and their
  threads named, since the minutes depend on the machine, the threads and what else ran;
* otherwise unknown.

A started run (``checkpoint.pt`` without ``metrics.json``) is estimated at the full run's
minutes less those its ``log.jsonl`` records.  Evaluation time is in no estimate.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..checkpoint import config_differences
from ..config import VIMConfig
from ..experiments import Experiment
from .provenance import logged_train_seconds, split_machine
from .single import run_dir


@dataclass
class PlannedRun:
    experiment: str
    variant: str
    seed: int
    folder: str
    #: "done" (metrics.json), "resume" (checkpoint.pt) or "start"
    state: str
    #: training minutes still to go (0 for a complete run); None: unknown
    minutes: Optional[float]
    #: what ``minutes`` rests on, in words
    basis: str
    #: a complete run's recorded training minutes and commit
    recorded_minutes: Optional[float] = None
    commit: Optional[str] = None


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _minutes(result: dict) -> Optional[float]:
    value = result.get("train_minutes")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    seconds = result.get("train_seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return float(seconds) / 60.0
    return None


def _same_settings(folder: str, config: VIMConfig) -> bool:
    saved = _read_json(os.path.join(folder, "config.json"))
    if saved is None:
        return False
    try:
        diff = config_differences(VIMConfig.from_saved(saved), config)
    except (TypeError, ValueError):
        return False
    return set(diff) <= {"seed"}


def _recorded(out: str, experiment: str, variant: str, config: VIMConfig
              ) -> Tuple[List[float], List[int]]:
    """Training minutes and threads of the variant's complete runs under ``out`` whose settings
    are ``config``'s but for the seed."""
    parent = os.path.dirname(run_dir(out, experiment, variant, 0))
    minutes, threads = [], []
    if not os.path.isdir(parent):
        return minutes, threads
    for name in sorted(os.listdir(parent)):
        folder = os.path.join(parent, name)
        if not name.startswith("seed="):
            continue
        result = _read_json(os.path.join(folder, "metrics.json"))
        if result is None or not _same_settings(folder, config):
            continue
        m = _minutes(result)
        if m is not None:
            minutes.append(m)
            t = split_machine(result)[2]
            if t is not None:
                threads.append(t)
    return minutes, threads


def _full_run(out: str, experiment: Experiment, variant: str, config: VIMConfig,
              cache: Dict) -> Tuple[Optional[float], str]:
    """(minutes of a whole run, basis) for one run of ``experiment``/``variant``."""
    if config.time_budget_s > 0:
        return config.time_budget_s / 60.0, (
            f"time_budget_s = {config.time_budget_s:g} s (an upper bound)")
    key = (experiment.name, variant)
    if key not in cache:
        cache[key] = _recorded(out, experiment.name, variant, config)
    minutes, threads = cache[key]
    if minutes:
        t = sorted(set(threads))
        how = (f", {'/'.join(map(str, t))} thread(s)" if t else "")
        return sum(minutes) / len(minutes), (
            f"mean of {len(minutes)} complete run(s) of this variant here{how}")
    return None, "unknown: no time budget and no complete run of this variant here"


def plan_runs(experiments: Sequence[Experiment], out: str,
              seeds: Optional[Sequence[int]] = None, overrides: Sequence[str] = (),
              variants: Optional[Sequence[str]] = None) -> List[PlannedRun]:
    """Every run of ``experiments`` under ``out`` in the order they would run, with its state
    and estimate (see the module docstring).  ``seeds`` replaces every experiment's seeds and
    ``variants`` every experiment's variants.  Raises ``ValueError`` for a bad override or
    variant (before anything is read)."""
    configs = [(e, v, s, e.config(v, s, overrides)) for e in experiments
               for v in (e.variants if variants is None else variants)
               for s in (e.seeds if seeds is None else seeds)]
    cache: Dict = {}
    plan = []
    for experiment, variant, seed, config in configs:
        folder = run_dir(out, experiment.name, variant, seed)
        done = _read_json(os.path.join(folder, "metrics.json"))
        if done is not None:
            recorded = _minutes(done)
            commit = done.get("commit") if isinstance(done.get("commit"), str) else None
            plan.append(PlannedRun(experiment.name, variant, seed, folder, "done", 0.0,
                                   "complete", recorded, commit))
            continue
        full, basis = _full_run(out, experiment, variant, config, cache)
        state = "resume" if os.path.exists(os.path.join(folder, "checkpoint.pt")) else "start"
        minutes = full
        if state == "resume" and full is not None:
            so_far = logged_train_seconds(os.path.join(folder, "log.jsonl"))
            if so_far is not None:
                minutes = max(0.0, full - so_far / 60.0)
                basis += f", less {so_far / 60.0:.1f} min already trained"
        plan.append(PlannedRun(experiment.name, variant, seed, folder, state, minutes, basis))
    return plan


def render_plan(plan: Sequence[PlannedRun], jobs: int = 1) -> List[str]:
    """The plan as lines of text: one per run, then the totals."""
    lines = [f"{'experiment':18s} {'variant':22s} {'seed':>4s}  {'state':6s} "
             f"{'minutes':>8s}  basis"]
    for r in plan:
        if r.state == "done":
            shown = "—" if r.recorded_minutes is None else f"{r.recorded_minutes:.1f}"
            basis = f"complete (trained {shown} min, commit {r.commit or 'unknown'})"
            minutes = "0"
        else:
            minutes = "unknown" if r.minutes is None else f"{r.minutes:.1f}"
            basis = r.basis
        lines.append(f"{r.experiment:18s} {r.variant or '—':22s} {r.seed:>4d}  {r.state:6s} "
                     f"{minutes:>8s}  {basis}")
    todo = [r for r in plan if r.state != "done"]
    known = [r.minutes for r in todo if r.minutes is not None]
    unknown = len(todo) - len(known)
    total = sum(known)
    lines.append("")
    lines.append(f"{len(plan)} runs: {len(plan) - len(todo)} complete, "
                 f"{sum(r.state == 'resume' for r in todo)} to resume, "
                 f"{sum(r.state == 'start' for r in todo)} to start.")
    if todo:
        text = (f"Training still to go: {total:.0f} minutes for the {len(known)} run(s) with an "
                f"estimate")
        if known:
            text += (f" (at least {total / max(1, jobs):.0f} minutes of wall clock with "
                     f"--jobs {jobs})")
        if unknown:
            text += f"; {unknown} run(s) unknown, so the total is more"
        lines.append(text + ". Evaluation time is not included.")
    return lines
