"""When training ends (``schedule.stop``), and the validation error that every family is scored by.

Two rules, the config's ``stop``:

* ``"budget"`` (the default, and every config saved before the field existed): training ends
  after ``steps`` steps or ``time_budget_s`` seconds of training time, whichever comes first;
* ``"plateau"``: training also ends when the held-out validation error has stopped improving
  (:func:`plateau_reached`), with a cap on the training time (``time_budget_s``, or
  :data:`~pyro_vim.config.PLATEAU_CAP_S` = 3 hours when it is 0).  Every family (VIM, its
  monolithic M = 1 version, RIM, SCOFF) is trained by the same rule on the same quantity.

**The validation error** (:func:`validation_error`) is the squared error per frame, summed over
pixels and channels, of the one-step prediction of frames 1..F-1 of a fixed held-out set, each
frame predicted from the true frames before it only: for RIM and SCOFF their teacher-forced
prediction, for VIM the mean of :data:`VALIDATION_SAMPLES` one-step samples of its prior (its
predictive mean; :func:`pyro_vim.baselines.table1.one_step_errors`).  The held-out set is the
trainer's evaluation batch (``eval_sequences`` videos from :func:`~pyro_vim.train.eval_seed`,
never a training seed) cut to its first F = min(:data:`VALIDATION_FRAMES`, ``eval_seq_len``)
frames (5: Table 1's sequences), and VIM's prior draws are seeded the same at every evaluation,
so two evaluations of the same model give the same number.  The trainer computes it at every
evaluation (every ``eval_every`` dynamics steps, and once after pre-training: the
before-learning value) for the models that predict one step (not G-SWM, whose ``infer`` sees
the frame it reconstructs, nor VIM-k with k > 1 or with a velocity, which
:func:`pyro_vim.infer.predict` cannot take one step from one frame), and logs it in
``log.jsonl`` as ``"validation": {"error", "minutes"}`` (``minutes``: training time so far, the
clock of ``time_budget_s``, evaluations excluded; the before-learning record adds
``"before_learning": true``).

**The plateau** (:func:`relative_improvement`): with n evaluations e_1..e_n at the fixed interval
(the dynamics steps ``eval_every``, 2 ``eval_every``, ...; not the before-learning one), the last
third are the last k = floor(n / 3) of them, the rest the first n - k.  The relative improvement
is ``(min(rest) - min(last third)) / min(rest)``: how much the best error of the last third of the
run beats the best error before it (negative when it is worse).  Training stops when
n >= ``plateau_min_evals`` and the improvement is below ``plateau_tolerance`` (1%): over the last
third of its steps the run did not get 1% better than it already was.  A non-finite error counts
as no improvement.

Why the run stopped is recorded: the log record of the last step and the checkpoint get
``"stopped": {"by": "plateau" | "time_budget", "step", "minutes"}`` and a finished run's
``metrics.json`` says ``"stopped"`` (``"by": "steps"`` when it ran all its ``steps``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

#: Frames of each held-out validation video (Table 1's 5: frames 1..4 are scored).
VALIDATION_FRAMES = 5
#: VIM's one-step prior samples averaged into its predictive mean (as Table 1's evaluation).
VALIDATION_SAMPLES = 8


def relative_improvement(errors: Sequence[float]) -> Optional[float]:
    """``(min(rest) - min(last third)) / min(rest)`` of the evaluations ``errors`` (in order;
    the last third: the last ``len(errors) // 3``); None with fewer than 3 evaluations.
    Non-finite errors count as +inf; a rest whose best is 0 or +inf gives 0 (no improvement
    possible, or none measurable) unless the last third is finite and the rest is not (+inf)."""
    values = [float(e) if e is not None and math.isfinite(float(e)) else math.inf
              for e in errors]
    n = len(values)
    if n < 3:
        return None
    k = n // 3
    before, last = min(values[:n - k]), min(values[n - k:])
    if math.isinf(before):
        return math.inf if math.isfinite(last) else 0.0
    if before <= 0:
        return 0.0
    return (before - last) / before


def plateau_reached(errors: Sequence[float], tolerance: float = 0.01,
                    min_evals: int = 9) -> bool:
    """Whether a run whose validation errors at its evaluations are ``errors`` stops by the
    plateau rule: at least ``min_evals`` evaluations, and :func:`relative_improvement` below
    ``tolerance``."""
    if len(errors) < max(3, min_evals):
        return False
    return relative_improvement(errors) < tolerance


def validation_error(model, frames, num_samples: int = VALIDATION_SAMPLES) -> float:
    """The validation error of ``model`` on ``frames`` (N, F, 3, H, W): the one-step squared
    error per frame over frames 1..F-1 (:func:`pyro_vim.baselines.table1.one_step_errors`).
    The caller puts the model in eval mode and seeds VIM's draws."""
    from ..baselines.table1 import one_step_errors
    return float(one_step_errors(model, frames, num_samples)["per_frame"])


def supports_validation(model) -> bool:
    """Whether the trainer can compute ``model``'s validation error (RIM, SCOFF, VIM-1
    without a velocity: :func:`pyro_vim.baselines.table1.predicts_one_step`)."""
    from ..baselines.table1 import predicts_one_step
    return predicts_one_step(model)


def validation_frames(config) -> int:
    """F: the frames of each validation video (:data:`VALIDATION_FRAMES`, at most
    ``eval_seq_len``)."""
    return min(VALIDATION_FRAMES, int(config.eval_seq_len))


def validation_batch(config, generator=None):
    """The held-out validation videos of ``config`` (a :class:`~pyro_vim.data.VideoBatch`): the
    trainer's evaluation batch cut to :func:`validation_frames` frames.  For the report's
    reference lines; the trainer cuts its own cached batch."""
    from .trainer import eval_seed
    generator = generator if generator is not None else config.make_generator()
    batch = generator.generate(config.eval_sequences, config.eval_seq_len, eval_seed(config))
    return batch.head(validation_frames(config))


def stop_record(by: str, step: int, elapsed_s: float) -> Dict[str, Any]:
    """What is recorded when training stops: the rule, the step and the training minute."""
    return {"by": by, "step": int(step), "minutes": round(float(elapsed_s) / 60.0, 4)}
