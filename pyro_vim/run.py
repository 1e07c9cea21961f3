"""Run a paper experiment: every variant x seed trained, evaluated and recorded.

    python -m pyro_vim.run --list
    python -m pyro_vim.run EXPERIMENT [--set key=value ...] [--seeds 0,1,2] [--variants V,...]
                           --out DIR [--threads N] [--eval-sequences 64] [--eval-seq-len 11]
                           [--device cuda] [--precision bf16] [--compile] [--jobs N]
    python -m pyro_vim.run --keys          # every settable config key
    python -m pyro_vim.run EXPERIMENT --out DIR --reevaluate   # re-score finished runs

Each run lives in ``DIR/<experiment>[/<variant>]/seed=<s>/``: ``config.json`` (the whole config:
model family, prior, guide, data), ``checkpoint.pt``, ``log.jsonl``, ``pretrained.pt`` and
``before.json`` (the model and its metrics after slot-attention pre-training, with untrained
modules: the before-learning baseline) and ``metrics.json`` (written last; a run with it is
complete).  A model family with its own ``evaluation_metrics`` (a baseline such as G-SWM) is
scored by them; the experiment's extra ``evaluations`` may add "composition" and "transfer"
(VIM) or "med" (G-SWM's MED on Compositional Random Walk, single-step and multi-step).
Then ``python -m pyro_vim.report DIR`` aggregates mean ± std over seeds.

``--jobs N`` trains N runs of the sweep at a time, each in its own process with
``--threads`` threads (default: the cores divided by N), e.g. ``--jobs 2 --threads 1`` on two
cores; each run is the one a single process would train (same seed, same data).

A killed sweep continues where it stopped when the same command is run again: complete runs are
skipped, a started run resumes exactly from its checkpoint.  Changing a run's settings between
the two commands is refused (naming the fields).  ``DIR/<experiment>`` belongs to one sweep at a
time: a second sweep there is refused while the first lives.  Bad input (an unknown experiment,
key or value) prints ``error: ...`` and exits with status 2 before anything is written.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from typing import Any, Dict, List, Optional, Sequence

import pyro
import torch

from .baselines.med import model_med
from .checkpoint import CheckpointWriteError, config_differences, rng_state, set_rng_state
from .config import VIMConfig
from .distributed import SINGLE, Context, DistributedSetupError, barrier, from_env, shutdown
from .evaluate import default_seed, reconstruction_metrics, summary_metrics
from .experiments import EXPERIMENTS, Experiment, describe, get_experiment
from .fidelity import (
    composition_errors,
    composition_test_batch,
    transfer_errors,
    transfer_test_batch,
)
from .nn.accel import PRECISIONS
from .overrides import config_keys, parse_overrides
from .rundir import RunDirBusy, RunLock, write_json
from .train import NonFiniteError, Trainer, default_device

__all__ = ["run_experiment", "run_one", "rescore", "run_dir", "main"]


def run_dir(out: str, experiment: str, variant: str, seed: int) -> str:
    parts = [out, experiment] + ([variant] if variant else []) + [f"seed={seed}"]
    return os.path.join(*parts)


def _commit() -> str:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.machine()}, {os.cpu_count()} cores, {device}, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads")


def _held_out(config: VIMConfig, sequences: int, seq_len: int):
    return config.make_generator().generate(sequences, seq_len, default_seed(config))


#: Compositional test data of the "composition" evaluation (Fig. 5): sequences, frames, k.
COMPOSITION_TEST = {"sequences": 32, "seq_len": 6, "iterations": 8}
#: Unseen-object targets of the "transfer" evaluation (Fig. 7): sequences, frames (10 steps).
TRANSFER_TEST = {"sequences": 32, "seq_len": 11}
#: The "table1" evaluation (Table 1): 5-frame held-out sequences (as many as --eval-sequences),
#: and VIM's prior samples per one-step prediction.
TABLE1_TEST = {"seq_len": 5, "prior_samples": 8}
#: The "med" evaluation (Sec. 5.2 / Fig. 4: G-SWM's MED on Compositional Random Walk, 1-5
#: moves per frame): sequences, frames, and the multi-step model's iterations between frames.
MED_TEST = {"sequences": 32, "seq_len": 6, "iterations": 8}


def _evaluate(model, config, sequences, seq_len, evaluations=(), eval_data=None
              ) -> Dict[str, Any]:
    """Held-out metrics (on ``config``'s data changed by ``eval_data``) and the experiment's
    extra ``evaluations``; the RNGs are restored, so evaluating never changes what training
    draws (a resumed run equals an uninterrupted one)."""
    was_training, rng = model.training, rng_state()
    model.eval()
    try:
        pyro.set_rng_seed(default_seed(config) % 2 ** 32)
        test = config.replace(data=dict(eval_data)) if eval_data else config
        held_out = _held_out(test, sequences, seq_len)
        # a family with its own held-out metrics (a baseline without module selections: RIM,
        # SCOFF, G-SWM) is scored by them; VIM by the paper's summary metrics
        own = getattr(model, "summary_metrics", None) or getattr(model, "evaluation_metrics",
                                                                 None)
        if own is not None:
            out = dict(own(held_out))
        elif held_out.moves is None:       # recorded videos without ground truth
            out = reconstruction_metrics(model, held_out.frames)
        else:
            out = summary_metrics(model, held_out)
        seed = default_seed(config)
        if "med" in evaluations:
            batch = composition_test_batch(config, MED_TEST["sequences"], MED_TEST["seq_len"],
                                           seed)
            single = model_med(model, batch, 1)
            multi = model_med(model, batch, MED_TEST["iterations"])
            out["compositional_med"] = {"single_step": single, "multi_step": multi}
            out["compositional_med_single"] = single["med"]
            out["compositional_med_multi"] = multi["med"]
        if "composition" in evaluations:
            batch = composition_test_batch(config, COMPOSITION_TEST["sequences"],
                                           COMPOSITION_TEST["seq_len"], seed)
            out["composition"] = composition_errors(model, batch,
                                                    COMPOSITION_TEST["iterations"])
            out["composition_final_error"] = out["composition"]["final"]
        if "transfer" in evaluations:
            targets = transfer_test_batch(config, TRANSFER_TEST["sequences"],
                                          TRANSFER_TEST["seq_len"], seed)
            out["transfer"] = transfer_errors(model, targets, config.make_generator())
            out["transfer_error_mean"] = out["transfer"]["mean"]
        if "table1" in evaluations:
            from .baselines.table1 import table1_metrics
            batch = _held_out(test, sequences, TABLE1_TEST["seq_len"])
            out["table1"] = table1_metrics(model, batch, TABLE1_TEST["prior_samples"])
            out["table1_mse"] = out["table1"]["mse"]
            if "mse_prior_one_step" in out["table1"]:      # VIM: (c), one step from the prior
                out["table1_prior_mse"] = out["table1"]["mse_prior_one_step"]
                out["table1_prior_mean_mse"] = out["table1"]["vim_prior_mean"]["per_frame"]
        return out
    finally:
        model.train(was_training)
        set_rng_state(rng)


def _check_config(folder: str, config: VIMConfig) -> None:
    path = os.path.join(folder, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = VIMConfig.from_dict(json.load(f))
    diff = config_differences(saved, config)
    if diff:
        fields = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in diff.items())
        raise ValueError(f"{folder!r} holds a run with other settings ({fields}); run the same "
                         "command as before to continue it, or choose another --out")


#: seconds a rank waits for the others under torchrun: rank 0 evaluates each run (minutes)
#: while the others wait at the run's end
DISTRIBUTED_TIMEOUT_S = 3600.0


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
    result = {"experiment": experiment, "variant": variant, "seed": config.seed,
              "steps": trainer.step, "train_seconds": _train_seconds(trainer, start),
              "commit": _commit(), "machine": _machine(),
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
    from .models import load_model
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
    total, last = 0.0, 0.0
    if trainer.log_path and os.path.exists(trainer.log_path):
        with open(trainer.log_path) as f:
            for line in f:
                try:
                    t = float(json.loads(line).get("time", 0.0))
                except (ValueError, TypeError):
                    continue
                if t < last:          # a new process (resume) restarts the clock
                    total += last
                last = t
    return round(total + last, 1) if last else round(time.time() - start, 1)


def run_experiment(experiment: Experiment, out: str, seeds: Optional[Sequence[int]] = None,
                   variants: Optional[Sequence[str]] = None, overrides: Sequence[str] = (),
                   eval_sequences: int = 64, eval_seq_len: int = 11, progress: bool = False,
                   log=print, reevaluate: bool = False, device=None, precision: str = "fp32",
                   compile: bool = False, distributed: Optional[Context] = None,
                   sweep_lock: bool = True) -> List[Dict[str, Any]]:
    """Every (variant, seed) run of ``experiment`` under ``out`` (see the module docstring);
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


def run_jobs(experiment: Experiment, out: str, argv: Sequence[str], jobs: int,
             threads: Optional[int], seeds: Optional[Sequence[int]] = None,
             variants: Optional[Sequence[str]] = None, overrides: Sequence[str] = (),
             log=print, poll_s: float = 0.5) -> List[Dict[str, Any]]:
    """Every run of the sweep, ``jobs`` at a time, each in a child ``python -m pyro_vim.run``
    that trains that one (variant, seed) with ``threads`` threads.  ``argv`` holds the options
    the children share (``--set``, evaluation sizes, device, precision).  This process holds the
    sweep's folder for the whole sweep; each child holds its run's folder.  A failed run is
    reported and the others go on; raises :class:`RuntimeError` naming the failed runs, and
    :class:`ValueError` before anything starts when a run folder holds other settings."""
    seeds = list(experiment.seeds if seeds is None else seeds)
    variants = list(experiment.variants if variants is None else variants)
    for variant in variants:           # settings changed since a run started: refused up front
        for seed in seeds:
            _check_config(run_dir(out, experiment.name, variant, seed),
                          experiment.config(variant, seed, overrides))
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    pending = [(v, s) for v in variants for s in seeds]
    running: Dict[Any, subprocess.Popen] = {}
    failed = []
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))

    def _stop(signum, frame):           # kill PID: stop the children too (they resume later)
        raise KeyboardInterrupt(f"signal {signum}")

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stop) if main_thread else None
    with RunLock(os.path.join(out, experiment.name)):
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    variant, seed = pending.pop(0)
                    cmd = [sys.executable, "-m", "pyro_vim.run", experiment.name, "--out", out,
                           "--seeds", str(seed), "--threads", str(threads), "--as-job", *argv]
                    if variant:
                        cmd += ["--variants", variant]
                    log(f"[{time.strftime('%H:%M:%S')}] job {variant or experiment.name} "
                        f"seed={seed}: {threads} thread(s)")
                    running[(variant, seed)] = subprocess.Popen(cmd, env=env)
                time.sleep(poll_s)
                for key, proc in list(running.items()):
                    if proc.poll() is not None:
                        del running[key]
                        if proc.returncode != 0:
                            failed.append((key, proc.returncode))
                            log(f"[{time.strftime('%H:%M:%S')}] job {key[0] or experiment.name} "
                                f"seed={key[1]}: exited with {proc.returncode}")
        finally:              # interrupted: stop the children (their runs resume later)
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
            for proc in running.values():
                proc.terminate()
            for proc in running.values():
                proc.wait()
    if failed:
        raise RuntimeError("runs failed: " + ", ".join(
            f"{v or experiment.name} seed={s} (exit {rc})" for (v, s), rc in failed))
    results = []
    for variant in variants:
        for seed in seeds:
            path = os.path.join(run_dir(out, experiment.name, variant, seed), "metrics.json")
            with open(path) as f:
                results.append(json.load(f))
    return results


def _job_argv(args) -> List[str]:
    """The options a ``--jobs`` child shares with its parent."""
    argv = ["--eval-sequences", str(args.eval_sequences), "--eval-seq-len",
            str(args.eval_seq_len), "--precision", args.precision]
    if args.overrides:
        argv += ["--set", *args.overrides]
    if args.device is not None:
        argv += ["--device", args.device]
    if args.compile:
        argv.append("--compile")
    if args.progress:
        argv.append("--progress")
    return argv


def _quiet(*args, **kwargs) -> None:
    """The log of the ranks other than 0 under torchrun (rank 0 reports)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyro_vim.run",
                                description="Train and evaluate a paper experiment over seeds.")
    p.add_argument("experiment", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--keys", action="store_true", help="list the config keys --set takes")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides, e.g. steps=400 data.step=4")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the "
                                                 "experiment's)")
    p.add_argument("--variants", default=None, help="comma-separated subset of the variants")
    p.add_argument("--out", default="runs", help="sweep folder (default: runs)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--eval-sequences", type=int, default=64)
    p.add_argument("--eval-seq-len", type=int, default=11,
                   help="held-out sequence length (11 frames = 10 transition steps)")
    p.add_argument("--progress", action="store_true", help="show a progress bar per run")
    p.add_argument("--device", default=None,
                   help="torch device of the training (default: cuda when available)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16: encoder and decoder under bf16 autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile encoder and decoder")
    p.add_argument("--reevaluate", action="store_true",
                   help="re-score the complete runs with the current evaluation (no training)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained at a time, each in its own process (with --threads "
                        "threads; default: the cores divided by --jobs)")
    p.add_argument("--as-job", action="store_true", help=argparse.SUPPRESS)  # a --jobs child
    return p


def _parse_seeds(text: str) -> List[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"--seeds must be non-negative integers, got {text!r}")
    return seeds


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        print("\n".join(describe()))
        return 0
    if args.keys:
        print("\n".join(config_keys()))
        return 0
    try:
        if not args.experiment:
            raise ValueError("name an experiment (python -m pyro_vim.run --list)")
        experiment = get_experiment(args.experiment)
        seeds = _parse_seeds(args.seeds) if args.seeds is not None else None
        variants = None
        if args.variants is not None:
            variants = [v for v in args.variants.split(",") if v]
            unknown = [v for v in variants if v not in experiment.variants]
            if unknown:
                raise ValueError(f"unknown variants {unknown}; {experiment.name} has "
                                 f"{[v for v in experiment.variants]}")
        parse_overrides(args.overrides)
        for name in ("eval_sequences", "eval_seq_len", "threads", "jobs"):
            value = getattr(args, name)
            if value is not None and value < (2 if name == "eval_seq_len" else 1):
                raise ValueError(f"--{name.replace('_', '-')} is too small: {value}")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out!r} exists and is not a folder")
        if args.device is not None:
            try:
                dev = torch.device(args.device)
            except (RuntimeError, ValueError) as e:
                raise ValueError(f"bad --device {args.device!r}: {e}") from None
            if dev.type == "cuda" and not torch.cuda.is_available():
                raise ValueError("--device cuda was asked for but CUDA is not available")
        for v in (variants or experiment.variants):
            reason = experiment.ground_truth_needed()
            if experiment.config(v, 0, args.overrides).data.name == "npz" and reason:
                raise ValueError(
                    f"experiment {experiment.name!r} needs the ground truth of generated data "
                    f"({reason}); recorded videos (data.name=npz) train with python -m "
                    "pyro_vim.train --data DIR, or with the experiments that need none: "
                    + ", ".join(e.name for e in EXPERIMENTS.values()
                                if not e.ground_truth_needed()))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:       # under torchrun: one process group for the sweep (rank 0 evaluates at length)
        ctx = from_env(torch.device(args.device) if args.device else default_device(),
                       timeout_s=DISTRIBUTED_TIMEOUT_S)
    except DistributedSetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if ctx.enabled and args.reevaluate:
        print("error: --reevaluate runs in one process (no torchrun)", file=sys.stderr)
        return 2
    if args.jobs > 1 and (ctx.enabled or args.reevaluate):
        print("error: --jobs trains runs in child processes; it goes with neither torchrun nor "
              "--reevaluate", file=sys.stderr)
        shutdown()
        return 2
    if args.jobs > 1:
        try:
            run_jobs(experiment, args.out, _job_argv(args), args.jobs, args.threads, seeds,
                     variants, args.overrides)
        except (RunDirBusy, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"done: python -m pyro_vim.report {args.out} aggregates the runs")
        return 0
    try:
        run_experiment(experiment, args.out, seeds, variants, args.overrides,
                       args.eval_sequences, args.eval_seq_len, args.progress,
                       reevaluate=args.reevaluate, device=args.device,
                       precision=args.precision, compile=args.compile, distributed=ctx,
                       sweep_lock=not args.as_job)
    except (RunDirBusy, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CheckpointWriteError, NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    if ctx.is_main:
        print(f"done: python -m pyro_vim.report {args.out} aggregates the runs")
    return 0


if __name__ == "__main__":
    from .distributed import exit_process
    exit_process(main())
