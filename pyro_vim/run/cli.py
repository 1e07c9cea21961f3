"""The command line of the experiment runner (``python -m pyro_vim.run``).

    python -m pyro_vim.run --list
    python -m pyro_vim.run EXPERIMENT [--set key=value ...] [--seeds 0,1,2] [--variants V,...]
                           --out DIR [--threads N] [--eval-sequences 64] [--eval-seq-len 11]
                           [--device cuda] [--precision bf16] [--compile] [--jobs N]
                           [--progress]
    python -m pyro_vim.run --keys          # every settable config key
    python -m pyro_vim.run EXPERIMENT --out DIR --reevaluate   # re-score finished runs
    python -m pyro_vim.run EXPERIMENT --out DIR --plan         # the runs and their minutes
    python -m pyro_vim.run paper --out DIR [--jobs N --threads T] [--plan]
                           [--allow-mixed-commits]            # every experiment, one commit

Every variant x seed of the experiment is trained, evaluated and recorded
(:mod:`pyro_vim.run.single` describes a run's folder); then ``python -m pyro_vim.report DIR``
aggregates mean ± std over seeds.  ``--jobs N`` trains N runs of the sweep at a time, each in
its own process with ``--threads`` threads (default: the cores divided by N; see
:mod:`pyro_vim.run.jobs`), e.g. ``--jobs 2 --threads 1`` on two cores.  Under ``torchrun`` the
ranks train each run together (:mod:`pyro_vim.run.sweep`).

``paper`` runs every experiment (:mod:`pyro_vim.run.paper`: the order, and why the folder must
hold one commit's runs) with the same options, one experiment after another; ``--plan`` prints
the runs, their state and the training minutes still to go without running anything
(:mod:`pyro_vim.run.plan` says what each estimate rests on).

Bad input (an unknown experiment, key or value) prints ``error: ...`` and exits with status 2
before anything is written; a run that fails (a full disk, a non-finite loss) exits with 1 (the
paper sweep goes on with the next experiment first).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional, Sequence, Tuple

import torch

from ..checkpoint import CheckpointWriteError
from ..distributed import DistributedSetupError, from_env, shutdown
from ..experiments import EXPERIMENTS, Experiment, describe, get_experiment
from ..nn.accel import PRECISIONS
from ..overrides import config_keys, parse_overrides
from ..rundir import RunDirBusy
from ..train import NonFiniteError, default_device
from .jobs import run_jobs
from .paper import (
    MixedCommitsError,
    check_one_commit,
    check_settings,
    other_commits,
    paper_experiments,
    run_paper,
)
from .plan import plan_runs, render_plan
from .provenance import _commit, _dirty
from .sweep import run_experiment

#: The name that runs every experiment (``python -m pyro_vim.run paper --out DIR``).
PAPER = "paper"

#: seconds a rank waits for the others under torchrun: rank 0 evaluates each run (minutes)
#: while the others wait at the run's end
DISTRIBUTED_TIMEOUT_S = 3600.0


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyro_vim.run",
        description="Train and evaluate a paper experiment over seeds, or the whole paper "
                    "(EXPERIMENT = paper). A sweep that was stopped continues when the same "
                    "command runs again: complete runs are skipped, started runs resume.",
        epilog="paper: every experiment of --list, in the paper's order, into one --out folder "
               "(the same runs as each experiment's own command). The whole paper is meant "
               "to come from one commit: if --out already holds complete runs trained at "
               "another commit, paper refuses to start and names them; run it into a new "
               "--out folder, or pass --allow-mixed-commits to keep them (python -m "
               "pyro_vim.report DIR --reproduction then marks each row's commit). --plan "
               "prints every run (experiment, variant, seed), its state and its training "
               "minutes still to go (from time_budget_s or the minutes of complete runs in "
               "--out; 'unknown' otherwise) and runs nothing.")
    p.add_argument("experiment", nargs="?",
                   help=f"experiment name (see --list), or {PAPER!r} for all of them")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument("--keys", action="store_true", help="list the config keys --set takes")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE", help="config overrides, e.g. steps=400 data.step=4")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the "
                                                 "experiment's; paper: of every experiment)")
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
    p.add_argument("--plan", action="store_true",
                   help="print the runs, their state and estimated training minutes; run "
                        "nothing")
    p.add_argument("--allow-mixed-commits", action="store_true",
                   help="paper: keep complete runs of other commits in --out (refused "
                        "otherwise)")
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


def _check_args(args) -> Tuple[List[Experiment], Optional[List[int]], Optional[List[str]]]:
    """(experiments, seeds, variants) of the command line; ValueError for bad input."""
    if not args.experiment:
        raise ValueError("name an experiment (python -m pyro_vim.run --list), or "
                         f"{PAPER!r} for all of them")
    if args.experiment == PAPER:
        experiments = paper_experiments()
        if args.variants is not None:
            raise ValueError("--variants selects one experiment's variants; paper runs every "
                             "variant of every experiment")
    else:
        experiments = [get_experiment(args.experiment)]
        if args.allow_mixed_commits:
            raise ValueError("--allow-mixed-commits goes with paper (one experiment's sweep "
                             "does not check commits)")
    seeds = _parse_seeds(args.seeds) if args.seeds is not None else None
    variants = None
    if args.variants is not None:
        experiment = experiments[0]
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
    for experiment in experiments:
        for v in (variants or experiment.variants):
            reason = experiment.ground_truth_needed()
            if experiment.config(v, 0, args.overrides).data.name == "npz" and reason:
                raise ValueError(
                    f"experiment {experiment.name!r} needs the ground truth of generated data "
                    f"({reason}); recorded videos (data.name=npz) train with python -m "
                    "pyro_vim.train --data DIR, or with the experiments that need none: "
                    + ", ".join(e.name for e in EXPERIMENTS.values()
                                if not e.ground_truth_needed()))
    return experiments, seeds, variants


def _print_plan(args, experiments, seeds, variants) -> None:
    plan = plan_runs(experiments, args.out, seeds, args.overrides, variants)
    for line in render_plan(plan, args.jobs):
        print(line)
    if args.experiment == PAPER:
        commit = _commit()
        found = other_commits(plan, commit)
        if found:
            print(f"Complete runs of other commits ({', '.join(sorted(found))}; this code: "
                  f"{commit}): paper refuses to start here without --allow-mixed-commits.")
        else:
            print(f"Every complete run here was trained at this commit ({commit}).")


def _sweep(args, experiment, seeds, variants, ctx) -> None:
    """One experiment's sweep, in child processes (--jobs) or in this one."""
    if args.jobs > 1:
        run_jobs(experiment, args.out, _job_argv(args), args.jobs, args.threads, seeds,
                 variants, args.overrides)
    else:
        run_experiment(experiment, args.out, seeds, variants, args.overrides,
                       args.eval_sequences, args.eval_seq_len, args.progress,
                       reevaluate=args.reevaluate, device=args.device,
                       precision=args.precision, compile=args.compile, distributed=ctx,
                       sweep_lock=not args.as_job)


def _paper(args, experiments, seeds, ctx) -> int:
    """Every experiment in turn; 2 before anything runs on bad settings or mixed commits, 1
    when an experiment failed (the others ran)."""
    if not args.reevaluate:
        try:
            if not args.allow_mixed_commits:
                commit = _commit()
                check_one_commit(plan_runs(experiments, args.out, seeds, args.overrides),
                                 commit, args.out)
            check_settings(experiments, args.out, seeds, args.overrides)
        except (MixedCommitsError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if _dirty() and ctx.is_main:
            print(f"warning: the source tree has uncommitted changes; the runs record commit "
                  f"{_commit()} but train other code", file=sys.stderr)
    # a failed run ends its experiment's sweep, not the paper's; in child processes (--jobs)
    # every failure is a RuntimeError naming the runs (their own tracebacks are printed)
    failures = (RunDirBusy, CheckpointWriteError, NonFiniteError)
    failed = run_paper(experiments, lambda e: _sweep(args, e, seeds, None, ctx),
                       failures=failures + ((RuntimeError,) if args.jobs > 1 else ()),
                       log=print if ctx.is_main else (lambda *a, **k: None))
    if failed:
        print("error: some experiments failed (the others ran):\n  " + "\n  ".join(failed),
              file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        print("\n".join(describe()))
        return 0
    if args.keys:
        print("\n".join(config_keys()))
        return 0
    try:
        experiments, seeds, variants = _check_args(args)
        if args.plan:
            _print_plan(args, experiments, seeds, variants)
            return 0
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
        shutdown()
        return 2
    if args.jobs > 1 and (ctx.enabled or args.reevaluate):
        print("error: --jobs trains runs in child processes; it goes with neither torchrun nor "
              "--reevaluate", file=sys.stderr)
        shutdown()
        return 2
    try:
        if args.experiment == PAPER:
            status = _paper(args, experiments, seeds, ctx)
        else:
            _sweep(args, experiments[0], seeds, variants, ctx)
            status = 0
    except (RunDirBusy, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CheckpointWriteError, NonFiniteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        if args.jobs == 1:        # in this process: a bug, with its traceback
            raise
        print(f"error: {e}", file=sys.stderr)         # --jobs: the runs that failed
        return 1
    finally:
        shutdown()
    if ctx.is_main and status == 0:
        print(f"done: python -m pyro_vim.report {args.out} aggregates the runs")
    return status
