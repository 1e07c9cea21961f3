"""Where and how a run was made, recorded in its ``metrics.json`` (:func:`provenance`).

* ``commit`` -- the short hash of the code's git commit (``"unknown"`` outside a checkout);
* ``commit_dirty`` -- whether tracked files differed from that commit (``None`` when unknown);
* ``machine`` -- the hardware: architecture, CPU cores, GPU (e.g. ``"x86_64, 2 cores, no
  GPU"``); runs before 2026-12-08 appended the torch version and thread count to it
  (:func:`split_machine` separates them);
* ``torch`` and ``python`` -- the versions;
* ``threads`` -- torch's intra-op threads when the run was recorded.

The training time is the run's own (``train_seconds`` and ``train_minutes``,
:func:`logged_train_seconds`).
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from typing import Any, Dict, Optional, Tuple

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


def _git(*args: str) -> Optional[str]:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=_HERE).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


def _commit() -> str:
    out = _git("rev-parse", "--short", "HEAD")
    return out.strip() if out else "unknown"


def _dirty() -> Optional[bool]:
    """Whether tracked files differ from the commit (``None`` outside a git checkout)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def _machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}"


def provenance() -> Dict[str, Any]:
    """The entries every run's ``metrics.json`` records about its code and machine."""
    return {"commit": _commit(), "commit_dirty": _dirty(), "machine": _machine(),
            "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads()}


_OLD_MACHINE = re.compile(r"^(?P<machine>.*?), torch (?P<torch>[^,]+), (?P<threads>\d+) threads$")


def split_machine(result: Dict[str, Any]) -> Tuple[Optional[str], Optional[str], Optional[int]]:
    """``(machine, torch version, threads)`` of a ``metrics.json`` dict, from its own entries
    or, for a run recorded before they existed, from its older ``machine`` string (``"x86_64,
    2 cores, no GPU, torch 2.13.0+cpu, 1 threads"``); ``None`` for what it does not say."""
    machine = result.get("machine") if isinstance(result.get("machine"), str) else None
    version = result.get("torch") if isinstance(result.get("torch"), str) else None
    threads = result.get("threads")
    threads = threads if isinstance(threads, int) and not isinstance(threads, bool) else None
    if machine is not None:
        old = _OLD_MACHINE.match(machine)
        if old:
            machine = old["machine"]
            version = version or old["torch"]
            threads = threads if threads is not None else int(old["threads"])
    return machine, version, threads


def logged_train_seconds(log_path: str) -> Optional[float]:
    """Training seconds of a run summed from its ``log.jsonl`` (each line's ``time``: seconds
    since its process started; a resumed process restarts the clock), or ``None`` when the
    log is missing or records no time."""
    if not log_path or not os.path.exists(log_path):
        return None
    total, last = 0.0, 0.0
    with open(log_path) as f:
        for line in f:
            try:
                t = float(json.loads(line).get("time", 0.0))
            except (ValueError, TypeError, AttributeError):
                continue
            if t < last:          # a new process (resume) restarts the clock
                total += last
            last = t
    return round(total + last, 1) if last else None
