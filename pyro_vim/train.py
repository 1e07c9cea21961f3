"""Training: slot-attention pre-training, then SVI with ``Trace_ELBO`` over sequences.

``train(config, out_dir, ...)`` runs the whole schedule of Appendix A.2:

1. ``config.pretrain_steps`` steps of slot-attention pre-training: the model with a single frame
   (discovery + decoder only) on single frames, with a linear learning-rate warm-up;
2. dynamics training on sequences with the length curriculum (``config.seq_len_at``), the
   Gaussian KL weight annealed by ``poutine.scale`` (``config.z_kl_weight_at``), Adam with global
   gradient-norm clipping.

Every batch is generated afresh from the dataset with a seed that depends only on the step, so
the data order is reproducible and resumable; evaluation uses a seed never used in training.
Writes ``out_dir/log.jsonl`` (one JSON object per step) and ``out_dir/checkpoint.pt``.
"""
from __future__ import annotations

import json
import math
import os
import time
from typing import Callable, Dict, Optional

import pyro
import torch

from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .config import VIMConfig
from .data import make_dataset
from .elbo import TermsELBO
from .evaluate import identification
from .model import VIM

TRAIN_SEED_STRIDE = 10_000_000
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
    return make_dataset(config.dataset, num_objects=config.num_objects,
                        image_size=config.image_size)


class NonFiniteError(FloatingPointError):
    pass


class Trainer:
    """Holds model, optimiser, data and logs; ``run(steps)`` trains up to a total step count."""

    def __init__(self, config: VIMConfig, out_dir: Optional[str] = None, device=None,
                 resume: bool = False, checkpoint_every: int = 500, progress: bool = True,
                 skip_nonfinite: bool = False, prior=None, guide=None):
        self.config = config.validate()
        self.out_dir = out_dir
        self.device = torch.device(device) if device is not None else default_device()
        self.checkpoint_every = checkpoint_every
        self.progress = progress
        self.skip_nonfinite = skip_nonfinite
        self.step = 0
        self.skipped = 0
        self.last_eval: Dict[str, float] = {}
        pyro.set_rng_seed(config.seed)
        self.vim = VIM(config, prior=prior, guide=guide).to(self.device)
        self.optimizer = torch.optim.Adam(self.vim.parameters(), lr=config.lr)
        self.elbo = TermsELBO()
        self.data = make_generator(config)
        self._eval_batch = None
        if resume:
            self._resume()

    # ---------------------------------------------------------------- paths & resume
    @property
    def checkpoint_path(self) -> Optional[str]:
        return os.path.join(self.out_dir, "checkpoint.pt") if self.out_dir else None

    @property
    def log_path(self) -> Optional[str]:
        return os.path.join(self.out_dir, "log.jsonl") if self.out_dir else None

    def _resume(self):
        if not self.checkpoint_path or not os.path.exists(self.checkpoint_path):
            raise FileNotFoundError(f"--resume: no checkpoint at {self.checkpoint_path!r}")
        ckpt = load_checkpoint(self.checkpoint_path, map_location=self.device)
        saved = VIMConfig.from_dict(ckpt["config"])
        if saved != self.config:
            diff = {k: (v, getattr(self.config, k)) for k, v in saved.to_dict().items()
                    if getattr(self.config, k) != v}
            raise ValueError(f"--resume: the checkpoint's config differs from this run's "
                             f"(field: (checkpoint, now)): {diff}")
        self.vim.load_state_dict(ckpt["model"])
        if "optimizer" in ckpt:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.skipped = int(ckpt.get("skipped", 0))
        set_rng_state(ckpt["rng"])
        self._truncate_log(self.step)

    def _truncate_log(self, step: int):
        """Drop log lines written after the checkpoint (a crash may have left some)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return
        with open(self.log_path) as f:
            lines = [ln for ln in f if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        tmp = self.log_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(kept)
        os.replace(tmp, self.log_path)

    def save(self):
        if self.checkpoint_path:
            save_checkpoint(self.checkpoint_path, self.vim, self.optimizer, self.step,
                            skipped=self.skipped)

    # ---------------------------------------------------------------- one step
    def lr_at(self, step: int) -> float:
        c = self.config
        if step < c.pretrain_steps:
            base, local = c.pretrain_lr, step
        else:
            base, local = c.lr, step - c.pretrain_steps
        if c.warmup_steps:
            base *= min(1.0, (local + 1) / c.warmup_steps)
        return base

    def batch(self, step: int) -> torch.Tensor:
        c = self.config
        if step < c.pretrain_steps:
            data = self.data.generate(c.batch_size, 2, train_seed(c, step))
            frames = torch.from_numpy(data.frames).reshape(-1, 1, 3, c.image_size, c.image_size)
        else:
            length = c.seq_len_at(step - c.pretrain_steps)
            frames = torch.from_numpy(self.data.generate(c.batch_size, length,
                                                         train_seed(c, step)).frames)
        return frames.to(self.device)

    def train_step(self) -> Dict[str, float]:
        c, vim, step = self.config, self.vim, self.step
        pretraining = step < c.pretrain_steps
        frames = self.batch(step)
        if pretraining:
            model, guide = vim._model, vim._guide
        else:
            model, guide = vim.model, vim.guide
            vim.z_kl_weight = c.z_kl_weight_at(step - c.pretrain_steps)
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss, terms = self.elbo.loss_and_terms(model, guide, frames)
        n = frames.shape[0]
        record = {"step": step + 1, "phase": "pretrain" if pretraining else "dynamics",
                  "loss": float(loss.detach()) / n, "seq_len": int(frames.shape[1]), "lr": lr,
                  "z_kl_weight": vim.z_kl_weight if not pretraining else None}
        record.update({k: v for k, v in terms.items()})
        bad = [k for k in ("loss", "recon", "kl_z", "kl_r") if k in record
               and not math.isfinite(record[k])]
        if not bad:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(vim.parameters(), c.clip_norm)
            record["grad_norm"] = float(norm)
            if not math.isfinite(record["grad_norm"]):
                bad.append("grad_norm")
        if bad:
            if not self.skip_nonfinite:
                raise NonFiniteError(
                    f"non-finite {', '.join(bad)} at step {step + 1} "
                    f"({', '.join(f'{k}={record.get(k)}' for k in ('loss', 'recon', 'kl_z', 'kl_r', 'grad_norm') if k in record)}); "
                    f"the last good checkpoint is kept at {self.checkpoint_path}")
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            record["skipped"] = self.skipped
        else:
            self.optimizer.step()
        self.step += 1
        return record

    # ---------------------------------------------------------------- evaluation
    def evaluation_batch(self):
        if self._eval_batch is None:
            c = self.config
            self._eval_batch = self.data.generate(c.eval_sequences, c.eval_seq_len, eval_seed(c))
        return self._eval_batch

    def evaluate(self) -> Dict[str, float]:
        report = identification(self.vim, self.evaluation_batch())
        self.last_eval = {"accuracy": report["rule_module_accuracy"],
                          "nmi": report["nmi"], "position_error": report["mean_position_error"],
                          "module_usage": report["module_usage"]}
        return self.last_eval

    # ---------------------------------------------------------------- the loop
    def run(self, steps: int, callback: Optional[Callable[["Trainer", dict], None]] = None,
            time_budget_s: Optional[float] = None) -> "Trainer":
        """Train until the total step count reaches ``steps`` (pre-training included)."""
        from tqdm.auto import tqdm
        if self.out_dir:
            os.makedirs(self.out_dir, exist_ok=True)
        start = time.time()
        bar = tqdm(total=steps, initial=min(self.step, steps), disable=not self.progress,
                   dynamic_ncols=True)
        log = open(self.log_path, "a") if self.log_path else None
        try:
            while self.step < steps:
                record = self.train_step()
                record["time"] = time.time() - start
                c = self.config
                dyn_step = self.step - c.pretrain_steps
                if dyn_step > 0 and c.eval_every and (dyn_step % c.eval_every == 0
                                                      or self.step == steps):
                    was_training = self.vim.training
                    self.vim.eval()
                    record["eval"] = self.evaluate()
                    self.vim.train(was_training)
                if log:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                    self.save()
                bar.update(1)
                post = {"loss": f"{record['loss']:.1f}", "rec": f"{record.get('recon', 0):.1f}",
                        "klz": f"{record.get('kl_z', 0):.2f}", "klr": f"{record.get('kl_r', 0):.2f}"}
                if self.last_eval:
                    post["acc"] = f"{self.last_eval['accuracy']:.3f}"
                bar.set_postfix(post, refresh=False)
                if callback:
                    callback(self, record)
                if time_budget_s is not None and time.time() - start > time_budget_s:
                    break
        finally:
            bar.close()
            if log:
                log.close()
        self.save()
        return self


def train(config: VIMConfig, out_dir: Optional[str] = None, steps: Optional[int] = None,
          **kwargs) -> Trainer:
    """Convenience wrapper: ``Trainer(config, out_dir, **kwargs).run(steps)``."""
    trainer = Trainer(config, out_dir, **kwargs)
    total = steps if steps is not None else config.pretrain_steps + config.steps
    return trainer.run(total)
