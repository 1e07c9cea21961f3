"""Training: slot-attention pre-training, then SVI with ``Trace_ELBO`` over sequences.

The trainer works with any model of the protocol in :mod:`pyro_vim.models` (built by the config's
``model`` name): it asks the model for the Pyro ``(model, guide)`` pair of each step and minimises
``Trace_ELBO`` over it.  For VIM, ``train(config, out_dir, ...)`` runs the schedule of Appendix A.2:

1. ``config.pretrain_steps`` steps of slot-attention pre-training: the model with a single frame
   (discovery + decoder only) on single frames, with a linear learning-rate warm-up;
2. dynamics training on sequences with the length curriculum (``config.seq_len_at``), the
   Gaussian KL weight annealed by ``poutine.scale`` (``config.z_kl_weight_at``), Adam with global
   gradient-norm clipping.

Every batch is generated afresh from the dataset with a seed that depends only on the step, so
the data order is reproducible and resumable; evaluation uses a seed never used in training.
Training ends at the step count, or by the config's stopping rule (``stop``: the
``time_budget_s`` of training time, or also the plateau of the held-out validation error that
every evaluation computes; :mod:`pyro_vim.train.stopping`), which is recorded.
Writes ``out_dir/log.jsonl`` (one JSON object per step) and ``out_dir/checkpoint.pt``.  The run
directory belongs to one process at a time (:class:`pyro_vim.rundir.RunLock`): a second trainer
on it is refused with :class:`~pyro_vim.rundir.RunDirBusy`; a full disk stops the run with a
:class:`~pyro_vim.checkpoint.CheckpointWriteError` that says how to resume.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, List, Optional

import pyro
import torch

from .. import registry
from ..checkpoint import (
    CheckpointWriteError,
    check_config,
    load_checkpoint,
    load_model_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from ..config import VIMConfig
from ..data.shards import ShardData
from ..distributed import (
    Context,
    all_reduce_grads,
    all_reduce_sum,
    broadcast_parameters,
    from_env,
    gather_objects,
)
from ..elbo import TermsELBO
from ..evaluate import evaluate_batch, identification, reconstruction_metrics
from ..files import atomic_write, json_ready
from ..models import build_model
from ..nn.accel import accelerate_networks
from ..nn.transition import TransitionModules
from ..rundir import RunLock, is_no_space, no_space_message
from ..tensorboard import make_logger
from .stopping import (
    VALIDATION_SAMPLES,
    plateau_reached,
    stop_record,
    supports_validation,
    validation_error,
    validation_frames,
)

TRAIN_SEED_STRIDE = 10_000_000
#: Under torch.distributed, rank r's sampling noise is seeded with seed + r * RANK_SEED_STRIDE.
RANK_SEED_STRIDE = 1_000_003
EVAL_SEED_OFFSET = 4_000_000_000


def train_seed(config: VIMConfig, step: int) -> int:
    """The data seed of training step ``step`` (disjoint from every evaluation seed)."""
    return config.seed * TRAIN_SEED_STRIDE + step


def eval_seed(config: VIMConfig) -> int:
    """The held-out evaluation seed: never equal to a training seed."""
    return EVAL_SEED_OFFSET + config.seed


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(config: VIMConfig):
    """The training data generator of ``config`` (``config.data``)."""
    return config.make_generator()


class NonFiniteError(FloatingPointError):
    """A non-finite ELBO term or gradient; the message names the step and the terms."""


#: The ELBO terms of a log record checked for finiteness (with ``grad_norm``).
TERMS = ("loss", "recon", "kl_z", "kl_r", "kl_p", "kl_z0", "other")


class Trainer:
    """Holds model, optimiser, data and logs; ``run(steps)`` trains up to a total step count."""

    def __init__(self, config: VIMConfig, out_dir: Optional[str] = None, device=None,
                 resume: bool = False, checkpoint_every: int = 500, progress: bool = True,
                 skip_nonfinite: bool = False, prior=None, guide=None,
                 tensorboard: Optional[bool] = None, distributed: Optional[Context] = None,
                 precision: str = "fp32", compile: bool = False):
        if not isinstance(config, VIMConfig):
            raise TypeError(f"Trainer expects a VIMConfig, got {type(config).__name__}")
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError(f"out_dir must be a folder path or None, got {type(out_dir).__name__}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) \
                or checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be a non-negative int (0: only at the end), "
                             f"got {checkpoint_every!r}")
        if out_dir is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise ValueError(f"out_dir {os.fspath(out_dir)!r} exists and is not a folder")
        if resume and out_dir is None:
            raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
        config.validate()
        self.out_dir = out_dir
        self.device = torch.device(device) if device is not None else default_device()
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.skip_nonfinite = skip_nonfinite
        self.step = 0
        self.skipped = 0
        self.saved_step: Optional[int] = None      # step of the last checkpoint written/loaded
        #: seconds spent in ``run``'s training loop, summed over resumes (``time_budget_s``)
        self.elapsed_s = 0.0
        self.last_eval: Dict[str, float] = {}
        #: [step, validation error] of every evaluation at the fixed interval (``eval_every``
        #: dynamics steps): what the plateau rule reads (saved in the checkpoint)
        self.validation_history: List[List[float]] = []
        #: why training stopped before its step count (``stop_record``), or None
        self.stopped: Optional[Dict[str, Any]] = None
        # torchrun's environment (or an explicit Context); a single process otherwise
        self.dist = distributed if distributed is not None else from_env(self.device)
        if self.dist.enabled and self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", self.dist.local_rank)   # one GPU per rank
        pyro.set_rng_seed(config.seed)
        self.model = build_model(config, prior=prior, guide=guide).to(self.device)
        # how the Pyro-free networks run (bf16 autocast, torch.compile); not what they hold
        accelerate_networks(self.model, precision, compile)
        # the model's config: it names the prior and guide actually built
        self.config = self.model.config
        if self.dist.enabled:
            broadcast_parameters(self.model, self.dist)     # every rank starts from rank 0's
            pyro.set_rng_seed(config.seed + RANK_SEED_STRIDE * self.dist.rank)  # own noise
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.elbo = TermsELBO(categorical_r=self.config.r_kl == "categorical")
        #: whether the model has the validation error of pyro_vim.train.stopping
        self.validates = supports_validation(self.model)
        if self.config.stop == "plateau" and not self.validates:
            raise ValueError(f"stop='plateau' stops on the one-step validation error, which a "
                             f"{self.config.model!r} model of this config does not predict "
                             "(VIM with iterations=1 and no velocity, RIM and SCOFF do); use "
                             "stop='budget'")
        self.data = make_generator(self.config)
        self._eval_batch = None
        # rank 0 alone owns the run directory and writes to it
        self._lock = RunLock(out_dir) if out_dir is not None and self.dist.is_main else None
        self._tensorboard = tensorboard       # None: when installed (pyro_vim.tensorboard)
        self._tb = None
        if resume:
            if not os.path.isfile(self.checkpoint_path):
                raise FileNotFoundError(f"resume: no checkpoint at {self.checkpoint_path!r} "
                                        "(start without resume or point out_dir at the folder "
                                        "of an earlier run)")
            self._resume()         # reads only: a refused resume leaves the folder untouched
            if self._lock is not None:
                self._lock.acquire()   # then refuse a folder that another live run holds

    @property
    def vim(self):
        """The model being trained (named for the library's first family)."""
        return self.model

    def close(self) -> None:
        """Give the run directory up (a later trainer or resume may take it)."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._lock is not None:
            self._lock.release()

    # ---------------------------------------------------------------- paths & resume
    @property
    def checkpoint_path(self) -> Optional[str]:
        return os.path.join(self.out_dir, "checkpoint.pt") if self.out_dir else None

    @property
    def log_path(self) -> Optional[str]:
        return os.path.join(self.out_dir, "log.jsonl") if self.out_dir else None

    def _resume(self):
        """Restore model, optimiser, step and every RNG; writes nothing (and on error changes
        nothing on disk): the log is trimmed to the checkpoint's step by ``run``."""
        path = self.checkpoint_path
        # RNG states must stay on the CPU; load_state_dict moves the rest to the device
        ckpt = load_checkpoint(path, map_location="cpu")
        if "rng" not in ckpt or "optimizer" not in ckpt:
            raise ValueError(f"resume: {path!r} is a model-only checkpoint (no optimiser/RNG "
                             "state), it cannot be resumed exactly")
        check_config(ckpt, self.config, "this run",
                     hint="resume with the settings of the run that wrote it")
        load_model_state(self.vim, ckpt)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise ValueError(f"resume: the optimiser state in {path!r} does not fit this "
                             f"model: {e}") from None
        self.step = int(ckpt["step"])
        self.saved_step = self.step
        self.skipped = int(ckpt.get("skipped", 0))
        self.elapsed_s = float(ckpt.get("elapsed_s", 0.0))
        # written since the stopping rules: absent from earlier checkpoints (nothing stopped)
        self.validation_history = [list(v) for v in ckpt.get("validation_history", [])]
        self.stopped = dict(ckpt["stopped"]) if ckpt.get("stopped") else None
        ranks = ckpt.get("rng_ranks")
        world = len(ranks) if isinstance(ranks, list) else 1
        if world != self.dist.world_size:
            raise ValueError(f"resume: {path!r} was written by {world} process(es); resume it "
                             f"with the same number (got {self.dist.world_size}) so that every "
                             "rank continues its own random numbers exactly")
        set_rng_state(ranks[self.dist.rank] if isinstance(ranks, list) else ckpt["rng"])

    def _truncate_log(self, step: int):
        """Keep exactly the log lines of steps 1..``step`` (a crash may have left later lines,
        or half a line); rewrites the log atomically, and only when something changes."""
        if not self.log_path or not os.path.exists(self.log_path):
            return
        with open(self.log_path) as f:
            lines = f.readlines()
        kept = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:      # a half-written last line (killed mid-write)
                    continue
                raise ValueError(f"{self.log_path!r} line {i + 1} is not JSON; move the log "
                                 "away to resume") from None
            if record.get("step", 0) <= step:
                kept.append(line if line.endswith("\n") else line + "\n")
        if kept == lines:
            return
        atomic_write(self.log_path, "".join(kept))

    def save(self):
        """Write the checkpoint (rank 0; under torch.distributed every rank takes part, since
        the checkpoint holds every rank's RNG state)."""
        if not self.checkpoint_path:
            return
        extra = {"custom_parts": self.model.custom_parts} \
            if getattr(self.model, "custom_parts", None) else {}
        if self.dist.enabled:
            extra["rng_ranks"] = gather_objects(rng_state(), self.dist)
        if self.dist.is_main:
            try:
                save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.step,
                                skipped=self.skipped, elapsed_s=float(self.elapsed_s),
                                validation_history=[list(v) for v in self.validation_history],
                                stopped=dict(self.stopped) if self.stopped else None, **extra)
            except CheckpointWriteError as e:
                kept = (f"step {self.saved_step}" if self.saved_step is not None
                        else "none was written yet")
                raise CheckpointWriteError(e.errno, f"{e.strerror} [training stopped at step "
                                           f"{self.step}; last good checkpoint: {kept}]") from e
        self.saved_step = self.step

    # ---------------------------------------------------------------- one step
    def perception_parameters(self):
        """What ``config.freeze_perception`` keeps fixed in dynamics (the model's
        ``perception_parameters()``; none if it has no such method)."""
        fn = getattr(self.model, "perception_parameters", None)
        return list(fn()) if fn is not None else []

    def lr_at(self, step: int) -> float:
        c = self.config
        if step < c.pretrain_steps:
            base, local = c.pretrain_lr, step
        else:
            base, local = c.lr, step - c.pretrain_steps
        if c.warmup_steps:
            base *= min(1.0, (local + 1) / c.warmup_steps)
        if step >= c.pretrain_steps and c.lr_half_life:
            base *= 0.5 ** (local / c.lr_half_life)
        return base

    def batch(self, step: int) -> torch.Tensor:
        """This rank's ``batch_size`` videos of step ``step``: a slice of the global batch of
        ``batch_size * world_size`` videos, generated from the step's seed (so the data are the
        same whatever the number of processes, and disjoint across ranks)."""
        c, world, rank = self.config, self.dist.world_size, self.dist.rank
        lo, hi = rank * c.batch_size, (rank + 1) * c.batch_size
        if isinstance(self.data, ShardData):   # recorded videos: DataLoader + DistributedSampler
            if step < c.pretrain_steps:
                frames = self.data.frames(step, c.batch_size, 2, rank, world)
                frames = frames.reshape(-1, 1, *frames.shape[2:])
            else:
                frames = self.data.frames(step, c.batch_size,
                                          c.seq_len_at(step - c.pretrain_steps), rank, world)
            return frames.to(self.device)
        if step < c.pretrain_steps:
            # pre-training: the single frames of the global batch's 2-frame videos
            data = self.data.generate(c.batch_size * world, 2, train_seed(c, step))
            frames = torch.from_numpy(data.frames).reshape(-1, 1, 3, c.image_size, c.image_size)
            frames = frames[2 * lo:2 * hi]
        else:
            length = c.seq_len_at(step - c.pretrain_steps)
            frames = torch.from_numpy(self.data.generate(c.batch_size * world, length,
                                                         train_seed(c, step)).frames)[lo:hi]
        return frames.to(self.device)

    def train_step(self) -> Dict[str, float]:
        c, vim, step = self.config, self.vim, self.step
        pretraining = step < c.pretrain_steps
        frames = self.batch(step)
        model, guide = vim.programs(step)
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        try:
            loss, terms = self.elbo.loss_and_terms(model, guide, frames)
        except ValueError as e:     # Pyro's validation: a distribution got NaN/inf parameters
            loss, terms = self._invalid_elbo(e, model, guide, frames)
        n = frames.shape[0]
        if self.dist.enabled:      # the global batch's terms, summed over ranks
            names = sorted(terms)
            local_bad = float(not (math.isfinite(float(loss.detach())) and all(
                math.isfinite(terms[k]) for k in names)))
            summed = all_reduce_sum([float(loss.detach())] + [terms[k] * n for k in names]
                                    + [float(n), local_bad], self.dist)
            n, total = int(summed[-2]), summed[0]
            terms = {k: v / n for k, v in zip(names, summed[1:-2])}
            if summed[-1] > 0:
                total = float("nan")           # some rank failed: every rank skips or stops
        else:
            total = float(loss.detach())
        record = {"step": step + 1, "phase": "pretrain" if pretraining else "dynamics",
                  "loss": total / n, "seq_len": int(frames.shape[1]), "lr": lr,
                  "z_kl_weight": getattr(vim, "z_kl_weight", None) if not pretraining else None}
        record.update({k: v for k, v in terms.items()})
        bad = [k for k in TERMS if isinstance(record.get(k), float)
               and not math.isfinite(record[k])]
        if not bad:
            loss.backward()
            if not pretraining and c.freeze_perception:
                for p in self.perception_parameters():
                    p.grad = None
            all_reduce_grads(list(vim.parameters()), self.dist)   # sum over ranks
            grads = [p.grad for p in vim.parameters() if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads)
            record["grad_norm"] = float(norm)
            if math.isfinite(record["grad_norm"]):
                torch.nn.utils.clip_grads_with_norm_(vim.parameters(), c.clip_norm, norm)
            else:    # leave the gradients as they are, so the message can name the bad ones
                bad.append("grad_norm")
        if bad:
            if not self.skip_nonfinite:
                raise NonFiniteError(self._nonfinite_message(step + 1, bad, record))
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            record["skipped"] = self.skipped
            record["nonfinite"] = bad
        else:
            self.optimizer.step()
        self.step += 1
        self._merge_duplicates(frames, record)
        return record

    def _merge_duplicates(self, frames, record) -> None:
        """The config's merge step (``config.merge``, :mod:`pyro_vim.duplicates`): by default
        every ``merge_every`` dynamics steps from ``warmup_steps`` on, reset modules that copy
        another; the record gets ``merged`` = {copy: kept}."""
        c = self.config
        merge = registry.lookup("merge", c.merge).from_config(c)
        if not (merge.due(self.step - c.pretrain_steps)
                and isinstance(getattr(self.vim, "transition", None), TransitionModules)):
            return
        rng = rng_state()
        merged = merge(self.vim, frames, self.optimizer, self.dist)
        set_rng_state(rng)      # the check never shifts training's random numbers
        if merged:
            record["merged"] = {str(k): v for k, v in merged.items()}

    def _invalid_elbo(self, error: ValueError, model, guide, frames):
        """A distribution rejected its parameters (NaN/inf reached it): a non-finite ELBO.

        Re-raises any other ValueError.  To name the offending terms the ELBO is recomputed
        once without validation (no gradient; only on this failure path).
        """
        message = str(error)
        if "invalid values" not in message:
            raise error
        terms: Dict[str, object] = {}
        try:
            with pyro.validation_enabled(False), torch.no_grad():
                terms.update(self.elbo.loss_and_terms(model, guide, frames)[1])
        except Exception:
            pass
        first = message.strip().splitlines()[0]
        terms["invalid"] = first.split(", but found")[0][:300]
        return torch.tensor(float("nan")), terms

    def _nonfinite_message(self, step: int, bad, record) -> str:
        values = ", ".join(f"{k}={record[k]}" for k in (*TERMS, "grad_norm") if k in record)
        lines = [f"non-finite {', '.join(bad)} at step {step} ({values})"]
        if "invalid" in record:
            lines.append(f"Pyro's validation refused a distribution: {record['invalid']}")
        params = [n for n, p in self.vim.named_parameters() if not torch.isfinite(p).all()]
        grads = [n for n, p in self.vim.named_parameters()
                 if p.grad is not None and not torch.isfinite(p.grad).all()]
        for what, names in (("parameters", params), ("gradients", grads)):
            if names:
                lines.append(f"non-finite {what}: {', '.join(names[:8])}"
                             + (f" and {len(names) - 8} more" if len(names) > 8 else ""))
        if self.saved_step is not None:
            lines.append(f"the last good checkpoint (step {self.saved_step}) is kept at "
                         f"{self.checkpoint_path}")
        else:
            lines.append("no checkpoint was written yet" if self.checkpoint_path
                         else "no checkpoint is kept (no out_dir)")
        lines.append("pass skip_nonfinite=True (--skip-nonfinite) to skip such steps instead")
        return "; ".join(lines)

    # ---------------------------------------------------------------- evaluation
    def evaluation_batch(self):
        if self._eval_batch is None:
            c = self.config
            self._eval_batch = self.data.generate(c.eval_sequences, c.eval_seq_len, eval_seed(c))
        return self._eval_batch

    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        custom = getattr(self.model, "evaluation_metrics", None)
        if custom is not None:
            self.last_eval = dict(custom(self.evaluation_batch()))
            return self.last_eval
        batch = self.evaluation_batch()
        if batch.moves is None:            # recorded videos without ground truth
            self.last_eval = reconstruction_metrics(self.model, batch.frames)
            return self.last_eval
        if batch.moves.shape[-1] != 1:     # several moves per step: no rule to score
            report, _ = evaluate_batch(self.model, batch)
            self.last_eval = {"accuracy": None,
                              "position_error": report["position_error"]["mean"],
                              "recon_mse": report["recon_mse"]["mean"],
                              "module_usage": report["module_usage"]}
            return self.last_eval
        report = identification(self.model, batch)
        self.last_eval = {"accuracy": report["rule_module_accuracy"],
                          "nmi": report["nmi"], "position_error": report["mean_position_error"],
                          "module_usage": report["module_usage"]}
        return self.last_eval

    @contextmanager
    def _held_out(self):
        """Eval mode and the RNGs restored afterwards: evaluating never shifts training's random
        numbers."""
        was_training, rng = self.vim.training, rng_state()
        self.vim.eval()
        try:
            yield
        finally:
            self.vim.train(was_training)
            set_rng_state(rng)

    @torch.no_grad()
    def validate(self) -> Dict[str, Any]:
        """The validation error (:mod:`pyro_vim.train.stopping`) of the model now:
        ``{"error": squared error per frame, "minutes": training minutes so far}``.  VIM's prior
        draws are seeded the same at every call; the RNGs are restored afterwards."""
        frames = self.evaluation_batch().frames[:, :validation_frames(self.config)]
        with self._held_out():
            pyro.set_rng_seed(eval_seed(self.config) % 2 ** 32)
            error = validation_error(self.model, frames, VALIDATION_SAMPLES)
        return {"error": error, "minutes": round(self.elapsed_s / 60.0, 4)}

    def plateau_reached(self) -> bool:
        """Whether ``stop="plateau"`` ends training now: the validation errors of
        :attr:`validation_history` plateaued (:func:`pyro_vim.train.stopping.plateau_reached`;
        rank 0 decides, under torch.distributed every rank gets its answer)."""
        c = self.config
        stop = float(self.dist.is_main and plateau_reached(
            [e for _, e in self.validation_history], c.plateau_tolerance, c.plateau_min_evals))
        if self.dist.enabled:
            stop = all_reduce_sum([stop], self.dist)[0]
        return stop > 0

    def _stop(self, by: str, record: Optional[dict] = None) -> None:
        self.stopped = stop_record(by, self.step, self.elapsed_s)
        if record is not None:
            record["stopped"] = dict(self.stopped)

    def budget_spent(self) -> bool:
        """Whether the training-time cap (``time_budget_s``; with ``stop="plateau"`` and no
        budget, :data:`~pyro_vim.config.PLATEAU_CAP_S`) is used up by :attr:`elapsed_s` (under
        torch.distributed: on any rank, so that every rank stops at the same step)."""
        budget = self.config.schedule.time_cap_s
        if not budget:
            return False
        spent = float(self.elapsed_s >= budget)
        if self.dist.enabled:
            spent = all_reduce_sum([spent], self.dist)[0]
        return spent > 0

    def _write_log(self, log, record) -> None:
        try:
            log.write(_log_line(record))
            log.flush()
        except OSError as e:
            if is_no_space(e):
                kept = (f"step {self.saved_step}" if self.saved_step is not None
                        else "none was written yet")
                raise CheckpointWriteError(e.errno, no_space_message(
                    f"the training log {self.log_path!r}", self.out_dir,
                    f"last good checkpoint: {kept}; free some space, then resume "
                    "(examples/train_random_walk.py --out DIR --resume, or run the same "
                    "pyro_vim.run command again)")) from e
            raise

    # ---------------------------------------------------------------- the loop
    def run(self, steps: int, callback: Optional[Callable[["Trainer", dict], None]] = None,
            time_budget_s: Optional[float] = None) -> "Trainer":
        """Train until the total step count reaches ``steps`` (pre-training included), or the
        config's stopping rule ends training (:attr:`stopped`).

        The log first loses any line past the current step (left by a crash after the last
        checkpoint), so after a resume it holds every step exactly once.

        ``time_budget_s`` stops this call after that many seconds; the training-time cap
        (``config.time_budget_s``, or 3 hours under ``stop="plateau"`` when it is 0) stops
        training once :attr:`elapsed_s`, the training time summed over resumes (the periodic
        evaluations excluded), reaches it; ``stop="plateau"`` also stops it when the validation
        error has plateaued (:mod:`pyro_vim.train.stopping`).  Either way the loop ends after a
        whole step, the step's log record and the checkpoint say ``stopped`` (the rule, step and
        training minute) and the checkpoint is written; a stopped run trains no further when
        resumed, and a run killed before it stopped resumes with the time it had used (saved in
        the checkpoint as ``elapsed_s``) and its validation history.

        Every evaluation (every ``eval_every`` dynamics steps and at ``steps``) logs the
        metrics as ``eval`` and, for the families that predict one step (VIM, RIM, SCOFF), the
        validation error as ``validation`` (``{"error", "minutes"}``); the last pre-training
        step logs the validation error of the pre-trained model (``"before_learning": true``).
        """
        from tqdm.auto import tqdm
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}")
        main = self.dist.is_main
        if self._lock is not None:
            self._lock.acquire()      # creates out_dir; refuses a directory another run holds
            if self._tb is None:
                self._tb = make_logger(self.out_dir, self._tensorboard)
        if main:
            self._truncate_log(self.step)
        start = time.time()
        elapsed_before, evaluating = self.elapsed_s, 0.0
        if self.stopped is None and self.step < steps and self.budget_spent():
            self._stop("time_budget")    # e.g. a checkpoint written before stops were recorded
        bar = tqdm(total=steps, initial=min(self.step, steps),
                   disable=not (self.progress and main), dynamic_ncols=True)
        log = open(self.log_path, "a") if self.log_path and main else None
        try:
            while self.step < steps and self.stopped is None:
                record = self.train_step()
                record["time"] = time.time() - start
                self.elapsed_s = elapsed_before + record["time"] - evaluating
                c = self.config
                dyn_step = self.step - c.pretrain_steps
                interval = bool(dyn_step > 0 and c.eval_every and dyn_step % c.eval_every == 0)
                eval_start = time.time()
                if main and dyn_step > 0 and c.eval_every and (interval or self.step == steps):
                    with self._held_out():
                        record["eval"] = self.evaluate()
                        if self._tb is not None:
                            self._tb.images(self.step, self.vim, torch.from_numpy(
                                self.evaluation_batch().frames[0]).to(self.device))
                    if self.validates:
                        record["validation"] = self.validate()
                        if interval:
                            self.validation_history.append(
                                [self.step, record["validation"]["error"]])
                elif main and dyn_step == 0 and c.pretrain_steps and self.validates:
                    record["validation"] = dict(self.validate(), before_learning=True)
                if interval and c.stop == "plateau" and self.plateau_reached():
                    self._stop("plateau", record)
                elif self.budget_spent():
                    self._stop("time_budget", record)
                    if main and self.validates and "validation" not in record:
                        record["validation"] = self.validate()   # the model the budget gave
                evaluating += time.time() - eval_start           # not training time
                if log:
                    self._write_log(log, record)
                if self._tb is not None:
                    self._tb.scalars(self.step, record)
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save()
                bar.update(1)
                post = {"loss": f"{record['loss']:.1f}", "rec": f"{record.get('recon', 0):.1f}",
                        "klz": f"{record.get('kl_z', 0):.2f}",
                        "klr": f"{record.get('kl_r', 0):.2f}"}
                if isinstance(self.last_eval.get("accuracy"), float):
                    post["acc"] = f"{self.last_eval['accuracy']:.3f}"
                bar.set_postfix(post, refresh=False)
                if callback:
                    callback(self, record)
                if time_budget_s is not None and time.time() - start > time_budget_s:
                    break
        except BaseException:
            self.close()
            raise
        finally:
            bar.close()
            if log:
                log.close()
        if self.saved_step != self.step:
            self.save()
        self.close()          # the run is complete up to ``steps``: the directory is free
        return self


def _log_line(record) -> str:
    return json.dumps(json_ready(record), allow_nan=False) + "\n"    # a skipped step's NaN: null


def train(config: VIMConfig, out_dir: Optional[str] = None, steps: Optional[int] = None,
          **kwargs) -> Trainer:
    """Convenience wrapper: ``Trainer(config, out_dir, **kwargs).run(steps)``."""
    trainer = Trainer(config, out_dir, **kwargs)
    total = steps if steps is not None else config.pretrain_steps + config.steps
    return trainer.run(total)
