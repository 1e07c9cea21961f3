"""Mean ± std tables and figures over the runs of a sweep.

The library, re-exported here: :func:`aggregate` (the dict written to ``report.json``),
:func:`render_markdown` (``report.md``) and :func:`write_report` (aggregate and write
everything).  One concept a module:

* :mod:`~pyro_vim.report.runs` -- finding the runs under a sweep folder, and their groups;
* :mod:`~pyro_vim.report.statistics` -- mean ± sample standard deviation of scalars and arrays;
* :mod:`~pyro_vim.report.alignment` -- per-module numbers put in rule order before averaging;
* :mod:`~pyro_vim.report.aggregation` -- :func:`aggregate`;
* :mod:`~pyro_vim.report.markdown` -- :func:`render_markdown`;
* :mod:`~pyro_vim.report.curves` -- the runs' learning curves (the validation error in their
  ``log.jsonl``) over seeds, and the model-free reference errors;
* :mod:`~pyro_vim.report.figures` -- the scalars, module-usage and learning-curve figures
  (matplotlib);
* :mod:`~pyro_vim.report.samples` -- Table 1's one-step samples, drawn from the runs'
  checkpoints (the one part that loads models: torch and Pyro);
* :mod:`~pyro_vim.report.writing` -- :func:`write_report`, each file atomically;
* :mod:`~pyro_vim.report.paper_results` -- the paper's results as data (:data:`RESULTS`: runs,
  metric, claim, goal, docs page of each line of REPRODUCTION.md);
* :mod:`~pyro_vim.report.reproduction` -- :func:`write_reproduction`, REPRODUCTION.md from the
  runs;
* :mod:`~pyro_vim.report.cli` -- the command line, ``python -m pyro_vim.report DIR [--out OUT]``
  (:func:`main`).
"""
from .aggregation import aggregate
from .cli import main
from .figures import FIGURE_METRICS
from .markdown import TABLE_ORDER, render_markdown
from .paper_results import RESULTS
from .reproduction import render_reproduction, write_reproduction
from .writing import write_report

__all__ = ["aggregate", "write_report", "render_markdown", "main", "TABLE_ORDER",
           "FIGURE_METRICS", "RESULTS", "render_reproduction", "write_reproduction"]
