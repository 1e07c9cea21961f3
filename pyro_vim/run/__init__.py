"""The experiment runner: every variant x seed of a paper experiment trained, scored, recorded.

The library, re-exported here:

* :mod:`~pyro_vim.run.single` -- one run in its folder: :func:`run_one` (train, resume or skip,
  then score and record), :func:`rescore`, :func:`run_dir`;
* :mod:`~pyro_vim.run.evaluation` -- how a run's model is scored on held-out data (and the
  sizes of the extra evaluations, e.g. :data:`MED_TEST`);
* :mod:`~pyro_vim.run.provenance` -- the commit, machine, versions and threads recorded with
  each run;
* :mod:`~pyro_vim.run.commands` -- the runner command that regenerates recorded runs;
* :mod:`~pyro_vim.run.plan` -- :func:`plan_runs`, a sweep's runs, states and training-minute
  estimates before it runs (``--plan``);
* :mod:`~pyro_vim.run.paper` -- the whole paper at one commit (``python -m pyro_vim.run paper``);
* :mod:`~pyro_vim.run.sweep` -- :func:`run_experiment`, the runs one after another in this
  process (or its ``torchrun`` ranks);
* :mod:`~pyro_vim.run.jobs` -- :func:`run_jobs`, the job pool (runs in child processes).

The command line, ``python -m pyro_vim.run EXPERIMENT --out DIR ...``, is
:mod:`pyro_vim.run.cli` (:func:`main`; see there for its options).
"""
from .cli import DISTRIBUTED_TIMEOUT_S, main
from .evaluation import COMPOSITION_TEST, MED_TEST, TABLE1_TEST, TRANSFER_TEST
from .jobs import run_jobs
from .paper import PAPER_ORDER, paper_experiments
from .plan import plan_runs, render_plan
from .single import rescore, run_dir, run_one
from .sweep import run_experiment

__all__ = ["run_experiment", "run_one", "rescore", "run_dir", "run_jobs", "main",
           "COMPOSITION_TEST", "TRANSFER_TEST", "TABLE1_TEST", "MED_TEST",
           "DISTRIBUTED_TIMEOUT_S", "PAPER_ORDER", "paper_experiments", "plan_runs",
           "render_plan"]
