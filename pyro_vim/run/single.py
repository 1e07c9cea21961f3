"""One run of an experiment: trained (or resumed, or skipped when complete), scored, recorded.

Each run lives in ``DIR/<experiment>[/<variant>]/seed=<s>/`` (:func:`run_dir`):
``config.json`` (the whole config: model family, prior, guide, data), ``checkpoint.pt``,
``log.jsonl`` (one record per step; the validation error of every evaluation, the learning
curve of the report), ``pretrained.pt`` and ``before.json`` (the model and its metrics after
slot-attention pre-training, with untrained modules: the before-learning baseline) and
``metrics.json`` (written last; a run with it is complete: the metrics, the training time in
seconds and minutes, where it was made, :func:`pyro_vim.run.provenance.provenance`, and
``stopped``, what ended the training: ``"by"`` the step count ``"steps"``, the
``"time_budget"`` or the ``"plateau"`` of the validation error, at which ``"step"`` and
training ``"minutes"``, evaluations excluded).  A started run resumes exactly from its
checkpoint; changing its settings in between is refused,
naming the fields.
:func:`rescore` re-scores a complete run with the current evaluation code.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

from ..checkpoint import config_differences
from ..config import VIMConfig
from ..distributed import SINGLE, Context, barrier
from ..evaluate import default_seed
from ..files import write_json
from ..train import Trainer
from ..train.stopping import stop_record
from .evaluation import _evaluate
from .provenance import _commit, logged_train_seconds, provenance


def run_dir(out: str, experiment: str, variant: str, seed: int) -> str:
    parts = [out, experiment] + ([variant] if variant else []) + [f"seed={seed}"]
    return os.path.join(*parts)


def _check_config(folder: str, config: VIMConfig) -> None:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = VIMConfig.from_saved(json.load(f))
    diff = config_differences(saved, config)
    if diff:
        fields = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(f"{folder!r} holds a run with other settings ({fields}); run the same "
                         "command as before to continue it, or choose another --out")


def run_one(config: VIMConfig, folder: str, eval_sequences: int = 64, eval_seq_len: int = 11,
            progress: bool = False, experiment: str = "", variant: str = "",
            checkpoint_every: int = 100, device=None, evaluations=(),
            eval_data=None, precision: str = "fp32", compile: bool = False,
            distributed: Optional[Context] = None) -> Dict[str, Any]:
    """Train (or resume, or skip when complete) one run in ``folder`` and return its
    ``metrics.json`` content.  ``precision`` / ``compile``: how the Pyro-free networks run
    (:mod:`pyro_vim.nn.accel`), recorded in the metrics.

    Under ``torchrun`` (``distributed``) every rank trains its part of each batch and rank 0
    alone writes the folder and evaluates; the ranks meet at the end of the run (the other
    ranks return ``{"metrics": {}}``)."""
    ctx = distributed if distributed is not None else SINGLE
    metrics_path = os.path.join(folder, "metrics.json")
    _check_config(folder, config)
    if os.path.exists(metrics_path):
        with open(metrics_path) as f:
            return json.load(f)
    if ctx.is_main:
        write_json(os.path.join(folder, "config.json"), config.to_dict())
    resume = os.path.exists(os.path.join(folder, "checkpoint.pt"))
    trainer = Trainer(config, folder, resume=resume, progress=progress,
                      checkpoint_every=checkpoint_every, device=device, precision=precision,
                      compile=compile, distributed=ctx)
    try:
        result = _train_and_score(trainer, config, folder, eval_sequences, eval_seq_len,
                                  experiment, variant, evaluations, eval_data, precision,
                                  compile, ctx)
    finally:
        trainer.close()
    barrier(ctx)                 # rank 0 has written metrics.json before any rank goes on
    return result


def _train_and_score(trainer, config, folder, eval_sequences, eval_seq_len, experiment,
                     variant, evaluations, eval_data, precision, compile, ctx):
    start = time.time()
    metrics_path = os.path.join(folder, "metrics.json")
    before_path = os.path.join(folder, "before.json")
    pre = config.pretrain_steps
    if pre and trainer.step < pre:
        trainer.run(pre)                     # ends with a checkpoint at the end of pre-training
    if pre and ctx.is_main and not os.path.exists(before_path):
        before = None
        if trainer.step == pre:              # keep the pre-trained model: it can be re-scored
            trainer.model.save(os.path.join(folder, "pretrained.pt"), step=pre)
            before = _evaluate(trainer.model, config, eval_sequences, eval_seq_len, evaluations,
                               eval_data)
        write_json(before_path, {"step": pre, "metrics": before})
    trainer.run(config.pretrain_steps + config.steps)
    if not ctx.is_main:
        return {"metrics": {}}
    trained = _evaluate(trainer.model, config, eval_sequences, eval_seq_len, evaluations,
                        eval_data)
    before = None
    if os.path.exists(before_path):
        with open(before_path) as f:
            before = json.load(f)["metrics"]
    seconds = _train_seconds(trainer, start)
    stopped = trainer.stopped or stop_record("steps", trainer.step, trainer.elapsed_s)
    result = {"experiment": experiment, "variant": variant, "seed": config.seed,
              "steps": trainer.step, "train_seconds": seconds,
              "train_minutes": round(seconds / 60.0, 2), "stopped": stopped, **provenance(),
              "device": str(trainer.device), "precision": precision, "compile": bool(compile),
              "processes": ctx.world_size,
              "eval": {"sequences": eval_sequences, "seq_len": eval_seq_len,
                       "seed": default_seed(config)},
              "metrics": trained, "before_learning": before}
    write_json(metrics_path, result)
    return result


def rescore(folder: str, eval_sequences: int = 64, eval_seq_len: int = 11,
            evaluations=(), eval_data=None) -> Dict[str, Any]:
    """Recompute a complete run's metrics with the current evaluation code, from its
    ``checkpoint.pt`` and ``pretrained.pt`` (training is not repeated; ``commit`` stays the
    training commit and ``evaluated_commit`` records this one)."""
    from ..models import load_model
    metrics_path = os.path.join(folder, "metrics.json")
    if not os.path.exists(metrics_path):
        raise ValueError(f"{folder!r} is not a complete run (no metrics.json) to re-score")
    with open(metrics_path) as f:
        result = json.load(f)
    model = load_model(os.path.join(folder, "checkpoint.pt"))
    result["metrics"] = _evaluate(model, model.config, eval_sequences, eval_seq_len, evaluations,
                                  eval_data)
    pretrained = os.path.join(folder, "pretrained.pt")
    if os.path.exists(pretrained):
        before = load_model(pretrained)
        result["before_learning"] = _evaluate(before, before.config, eval_sequences,
                                              eval_seq_len, evaluations, eval_data)
        write_json(os.path.join(folder, "before.json"),
                   {"step": model.config.pretrain_steps, "metrics": result["before_learning"]})
    result["eval"] = {"sequences": eval_sequences, "seq_len": eval_seq_len,
                      "seed": default_seed(model.config)}
    result["evaluated_commit"] = _commit()
    write_json(metrics_path, result)
    return result


def _train_seconds(trainer: Trainer, start: float) -> float:
    """Training time of the whole run, summed from the log (resumes included)."""
    logged = logged_train_seconds(trainer.log_path)
    return logged if logged is not None else round(time.time() - start, 1)
