"""Per-module numbers put in rule order before they are averaged over seeds.

A module's index is arbitrary (seed 0's "up" module may be seed 1's module 3), so each run's
per-module numbers (``confusion`` columns, ``module_usage``, ``module_translation_px``) are put
in the order of its best one-to-one rule -> module assignment (the one
``rule_module_accuracy`` scores): column r is the module assigned to rule r, then the
unassigned modules, most used first.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Optional

import numpy as np

#: Per-module entries of a metrics block, reordered with its confusion's columns.
_PER_MODULE = ("module_usage", "module_translation_px")


#: Above this many modules the assignment is not searched exhaustively (runs are left as saved).
_MAX_ALIGNED_MODULES = 10


def _module_order(conf: np.ndarray) -> Optional[List[int]]:
    """Column order of a (rules x modules) confusion: the modules of the best one-to-one
    rule -> module assignment (most matched choices) in rule order, then the others by
    decreasing use.  ``None`` if the matrix is not a usable confusion."""
    if conf.ndim != 2 or not conf.size or not np.isfinite(conf).all():
        return None
    rules, modules = conf.shape
    if modules > _MAX_ALIGNED_MODULES:
        return None
    best, best_pairs = -math.inf, []
    if modules >= rules:
        for perm in itertools.permutations(range(modules), rules):
            score = sum(conf[r, m] for r, m in enumerate(perm))
            if score > best + 1e-12:
                best, best_pairs = score, list(enumerate(perm))
    else:
        for perm in itertools.permutations(range(rules), modules):
            score = sum(conf[r, m] for m, r in enumerate(perm))
            if score > best + 1e-12:
                best, best_pairs = score, sorted((r, m) for m, r in enumerate(perm))
    assigned = [m for _, m in sorted(best_pairs)]
    rest = sorted((m for m in range(modules) if m not in assigned),
                  key=lambda m: (-conf[:, m].sum(), m))
    return assigned + rest


def _align_modules(block: Dict[str, Any]) -> Dict[str, Any]:
    """``block`` with its per-module numbers in the order of :func:`_module_order`."""
    try:
        conf = np.array(block.get("confusion"), dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return block
    order = _module_order(conf)
    if order is None or order == list(range(len(order))):
        return block
    out = dict(block)
    out["confusion"] = conf[:, order].tolist()
    for key in _PER_MODULE:
        value = block.get(key)
        if isinstance(value, list) and len(value) == len(order):
            out[key] = [value[m] for m in order]
    return out
