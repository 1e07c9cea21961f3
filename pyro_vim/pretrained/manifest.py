"""The shipped checkpoints' manifest (``pyro_vim/pretrained/manifest.json``).

One entry per name: ``file`` (beside the manifest), ``bytes``, ``sha256``, ``experiment``,
``variant``, ``seed``, ``commit`` (the training commit), ``command`` (the runner command that
trains it), ``steps``, ``train_minutes``, ``machine``, ``torch``, ``threads``, ``eval`` (the
held-out data it was scored on), and ``metrics`` / ``before_learning`` (the run's scalar
metrics, as its ``metrics.json`` records them).  Everything shipped stays within
:data:`MAX_TOTAL_BYTES`.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional

#: The folder of the shipped files (package data).
FOLDER = os.path.dirname(os.path.abspath(__file__))

MANIFEST = "manifest.json"

#: The most the shipped checkpoints may take together (10 MB), so that the package stays small.
MAX_TOTAL_BYTES = 10_000_000


def read_manifest(folder: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """``{name: entry}`` of ``folder`` (default: the package's); ``{}`` without a manifest."""
    path = os.path.join(folder or FOLDER, MANIFEST)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"{path} is not a manifest (a JSON object of entries)")
    return data


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
