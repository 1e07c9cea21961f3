"""Evaluation of a trained VIM (Sec. 5.1): rule identification, tracking, reconstruction.

The library, re-exported here:

* :mod:`~pyro_vim.evaluate.scoring` -- :func:`evaluate_batch` (every Sec. 5.1 metric of a model
  on one :class:`~pyro_vim.data.VideoBatch`) and :func:`identification` (used by the trainer);
* :mod:`~pyro_vim.evaluate.modules` -- :func:`module_step_errors` and :func:`fidelity_metrics`
  (what the learned modules do);
* :mod:`~pyro_vim.evaluate.summary` -- :func:`summary_metrics` (the numbers the experiment
  runner records) and :func:`reconstruction_metrics` (videos without ground truth);
* :mod:`~pyro_vim.evaluate.prediction` -- :func:`evaluate_predictions` (sampled futures);
* :mod:`~pyro_vim.evaluate.seeds` -- :func:`default_seed`, the evaluation data's seed.

The command line, ``python -m pyro_vim.evaluate CHECKPOINT --out DIR ...``, is
:mod:`pyro_vim.evaluate.cli` (:func:`main`; see there for its options and files).
"""
from .cli import main
from .modules import fidelity_metrics, module_step_errors
from .prediction import evaluate_predictions
from .scoring import _infer_all, evaluate_batch, identification  # noqa: F401 (benchmarks)
from .seeds import DEFAULT_SEED_OFFSET, default_seed
from .summary import _elbo_terms, reconstruction_metrics, summary_metrics  # noqa: F401 (tests)

__all__ = ["identification", "evaluate_batch", "evaluate_predictions", "summary_metrics",
           "reconstruction_metrics", "module_step_errors", "fidelity_metrics", "main",
           "DEFAULT_SEED_OFFSET", "default_seed"]
