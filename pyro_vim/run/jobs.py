"""The job pool: the runs of a sweep trained ``jobs`` at a time, each in a child process.

Each child is ``python -m pyro_vim.run EXPERIMENT --seeds S [--variants V] --as-job ...`` with
``OMP_NUM_THREADS`` threads; its run is the one a single process would train (same seed, same
data).  This process holds the sweep's folder for the whole sweep; SIGTERM (or Ctrl-C) stops the
children, whose runs resume later.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

from ..experiments import Experiment
from ..rundir import RunLock
from .single import _check_config, run_dir


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
