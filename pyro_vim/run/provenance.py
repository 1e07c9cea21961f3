"""Where a run was made: the code's commit and the machine, recorded in ``metrics.json``."""
from __future__ import annotations

import os
import platform
import subprocess

import torch


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
