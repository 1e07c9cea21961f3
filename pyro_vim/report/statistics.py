"""Mean ± sample standard deviation over seeds, of scalars and of (nested) lists of numbers.

A run's metrics block is flattened (:func:`_flatten`): numbers as scalars (``None`` for null
or non-finite), dicts of numbers per entry (``"module_step_error.up"``), lists (and lists of
lists) of numbers as arrays.  Scalars aggregate to ``{"mean", "std", "n", "values"}``
(:func:`_scalar_stats`; ``None`` and non-finite values skipped, ``ddof=1``, 0.0 for a single
value), arrays element by element to ``{"mean", "std", "n"}`` (:func:`_array_stats`; a
``"note"`` and null mean when the shapes differ).  Every float is finite or ``None``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np


def _finite_or_none(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


def _scalar_stats(values: List[float]) -> Dict[str, Any]:
    k = len(values)
    if k == 0:
        return {"mean": None, "std": None, "n": 0, "values": []}
    arr = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):
        mean = float(arr.mean())
        std = float(arr.std(ddof=1)) if k >= 2 else 0.0
    return {"mean": _finite_or_none(mean), "std": _finite_or_none(std), "n": k,
            "values": list(values)}


def _nested(arr: np.ndarray) -> Any:
    """Nested lists with NaN as None."""
    obj = arr.tolist()

    def fix(x):
        if isinstance(x, list):
            return [fix(v) for v in x]
        return _finite_or_none(x)

    return fix(obj)


def _array_stats(arrays: List[np.ndarray]) -> Dict[str, Any]:
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        return {"mean": None, "std": None, "n": len(arrays),
                "note": "shapes differ across runs " + ", ".join(str(list(s)) for s in shapes)}
    stack = np.stack(arrays)
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    with np.errstate(all="ignore"):
        total = np.where(finite, stack, 0.0).sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        dev = np.where(finite, stack - mean, 0.0)
        var = (dev ** 2).sum(axis=0) / np.maximum(count - 1, 1)
        std = np.where(count >= 2, np.sqrt(var), np.where(count == 1, 0.0, np.nan))
    return {"mean": _nested(mean), "std": _nested(std), "n": len(arrays)}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numeric_tree(x: Any) -> bool:
    if isinstance(x, list):
        return all(_numeric_tree(v) for v in x)
    return x is None or _is_number(x)


def _as_float(x: Any) -> Optional[float]:
    try:
        value = float(x)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _flatten(value: Any, name: str, scalars: Dict[str, Optional[float]],
             arrays: Dict[str, np.ndarray]) -> None:
    """Numbers (None for null / non-finite), dicts as ``name.key``, numeric lists as arrays."""
    if value is None:
        scalars[name] = None
    elif _is_number(value):
        scalars[name] = _as_float(value)
    elif isinstance(value, dict):
        for key, sub in value.items():
            _flatten(sub, f"{name}.{key}", scalars, arrays)
    elif isinstance(value, list) and value and _numeric_tree(value):
        try:
            arr = np.array(value, dtype=np.float64)
        except (ValueError, OverflowError):     # ragged, or an int too large for a float
            return
        if arr.size:
            arrays[name] = arr


def _is_scalar_stat(stat: Any) -> bool:
    return isinstance(stat, dict) and "values" in stat
