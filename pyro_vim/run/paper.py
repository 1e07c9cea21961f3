"""The whole paper at one commit: every experiment that REPRODUCTION.md reports, in one sweep
folder (``python -m pyro_vim.run paper --out DIR``).

:data:`PAPER_ORDER` runs the paper's own results first (Fig. 2/5/7, Fig. 3, Fig. 6), then the
baselines (G-SWM, Table 1), the ablations, and the experiments beyond the paper; an experiment
added to :data:`~pyro_vim.experiments.EXPERIMENTS` but not to the order runs last rather than
not at all.  Each experiment is the sweep its own command runs (``python -m pyro_vim.run
EXPERIMENT --out DIR``), into the same folder, so the paper sweep resumes as they do: complete
runs are skipped, started runs resume.

One commit: before anything trains, the planned runs that are already complete must have been
trained at this code's commit (:func:`check_one_commit`); otherwise the sweep is refused (a new
``--out`` folder runs the whole paper at this commit; ``--allow-mixed-commits`` keeps the older
runs, and the reproduction report then marks each row's commit).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

from ..experiments import EXPERIMENTS, Experiment
from .plan import PlannedRun
from .single import _check_config

#: The order of the paper sweep: the paper's results, its baselines, the ablations, then the
#: experiments beyond the paper.
PAPER_ORDER = ("random_walk", "module_count", "vim2_compositions", "gswm", "table1",
               "ablations", "glyphs", "interactions")


class MixedCommitsError(ValueError):
    """The sweep folder holds complete runs trained at another commit."""


def paper_experiments() -> List[Experiment]:
    """The experiments of the paper sweep, in :data:`PAPER_ORDER` (then any other)."""
    names = [n for n in PAPER_ORDER if n in EXPERIMENTS]
    names += [n for n in EXPERIMENTS if n not in names]
    return [EXPERIMENTS[n] for n in names]


def other_commits(plan: Sequence[PlannedRun], commit: str) -> Dict[str, List[str]]:
    """``{commit: [run folders]}`` of the complete runs in ``plan`` not trained at ``commit``."""
    found: Dict[str, List[str]] = {}
    for run in plan:
        if run.state == "done" and run.commit != commit:
            found.setdefault(run.commit or "unknown", []).append(run.folder)
    return found


def check_one_commit(plan: Sequence[PlannedRun], commit: str, out: str) -> None:
    """Raise :class:`MixedCommitsError` naming the other commits (and a run of each) when a
    complete run of ``plan`` was trained at a commit other than ``commit``."""
    found = other_commits(plan, commit)
    if not found:
        return
    listed = "; ".join(f"{c}: {len(folders)} run(s), e.g. {folders[0]}"
                       for c, folders in sorted(found.items()))
    raise MixedCommitsError(
        f"--out {out!r} holds complete runs trained at other commits ({listed}) and this code "
        f"is at {commit}, so the paper's runs would mix commits. Run the whole paper at {commit} "
        "into a new --out folder, or pass --allow-mixed-commits to keep those runs (they are "
        "skipped as complete; python -m pyro_vim.report DIR --reproduction marks each row's "
        "commit)")


def check_settings(experiments: Sequence[Experiment], out: str,
                   seeds: Optional[Sequence[int]], overrides: Sequence[str]) -> None:
    """Raise ``ValueError`` before anything trains when a planned run's folder holds a run
    with other settings (:func:`~pyro_vim.run.single._check_config`)."""
    from .single import run_dir
    for e in experiments:
        for v in e.variants:
            for s in (e.seeds if seeds is None else seeds):
                _check_config(run_dir(out, e.name, v, s), e.config(v, s, overrides))


def run_paper(experiments: Sequence[Experiment], run: Callable[[Experiment], None],
              failures: Sequence[type] = (RuntimeError,), log=print) -> List[str]:
    """``run(experiment)`` for each experiment in turn; an experiment whose sweep fails with
    one of ``failures`` is reported and the next one goes on.  Returns the failures, as
    ``"experiment: message"`` lines."""
    failed = []
    for i, experiment in enumerate(experiments, 1):
        log(f"== paper {i}/{len(experiments)}: {experiment.name} ({experiment.paper})")
        try:
            run(experiment)
        except tuple(failures) as e:
            failed.append(f"{experiment.name}: {e}")
            log(f"== {experiment.name} failed: {e}; going on with the next experiment")
    return failed
