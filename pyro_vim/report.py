"""Mean ± std tables and figures over the runs of a sweep (Pyro-free).

Usage::

    python -m pyro_vim.report DIR [--out OUT]

``DIR`` is the folder written by the experiment runner.  Every folder under it that holds a
``metrics.json`` is one run (nothing inside a run folder is searched further); the run's parent
folder names its group:

* ``DIR/<experiment>/seed=<s>/metrics.json`` (an experiment without variants), or
* ``DIR/<experiment>/<variant>/seed=<s>/metrics.json``
  (e.g. ``DIR/module_count/num_modules=2/seed=0/metrics.json``).

``DIR`` may also be one experiment's folder (``DIR/seed=0/...`` or ``DIR/<variant>/seed=0/...``):
the experiment is then named after the folder.  A folder not named ``seed=...`` that holds a
``metrics.json`` is itself a group with a single run, whose seed is read from the JSON.  A
``seed=...`` folder without ``metrics.json`` (an unfinished run) is listed as incomplete and
not aggregated.  Hidden folders and symbolic links to folders are not searched.

For each group (experiment, variant) the numbers of ``metrics`` and ``before_learning`` are
aggregated over seeds (``None`` and non-finite values skipped): scalars as mean, sample standard
deviation (``ddof=1``; 0.0 for a single value), count and values; dicts of numbers per entry
(``"module_step_error.up"``); lists (and lists of lists) of numbers element by element; ``rules``
is kept from the first run.  A module's index is arbitrary (seed 0's "up" module may be seed 1's
module 3), so before averaging, each run's per-module numbers (``confusion`` columns,
``module_usage``, ``module_translation_px``) are put in the order of its best one-to-one
rule -> module assignment (the one ``rule_module_accuracy`` scores): column r is the module
assigned to rule r, then the unassigned modules, most used first.  ``steps`` and
``train_seconds`` are aggregated the same way.

Written into ``OUT`` (default ``DIR``), each file atomically and only once everything has been
computed: ``report.json`` (strict JSON, NaN written as ``null``), ``report.md`` (one section per
experiment: a ``mean ± std`` table with one row per variant, a "before learning" table and the
incomplete runs), ``<experiment>_scalars.png`` (the headline metrics against the variants) and,
when the runs hold a ``confusion`` matrix, ``<experiment>_usage.png`` (per variant the mean
rule x module confusion, modules aligned to rules per run, normalised per row).  The command
prints the Markdown and the paths written.  A missing ``DIR``, one that is not a folder or holds
no ``metrics.json``, or a ``metrics.json`` that is not valid JSON prints ``error: ...`` on
stderr and exits with status 2, writing nothing.

Library use: :func:`aggregate` (the dict written to ``report.json``), :func:`write_report`
(aggregate and write everything), :func:`render_markdown`.
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .files import atomic_write, json_ready

__all__ = ["aggregate", "write_report", "render_markdown", "main", "TABLE_ORDER",
           "FIGURE_METRICS"]

PathLike = Union[str, "os.PathLike[str]"]

#: Columns that lead the Markdown tables (when present); the other scalars follow, sorted.
TABLE_ORDER = ("rule_module_accuracy", "track_rule_module_accuracy", "nmi",
               "module_step_error_max", "position_error", "recon_mse", "kl_z", "kl_r")
#: Metrics drawn in ``<experiment>_scalars.png`` (when present), in this order.
FIGURE_METRICS = ("rule_module_accuracy", "recon_mse", "kl_z", "kl_r",
                  "module_step_error_max", "position_error")
#: Dict-expanded entries (``key.sub``) shown in the Markdown tables; the others are JSON only.
_TABLE_DICT_PREFIXES = ("module_step_error.",)
SECTIONS = ("metrics", "before_learning")
METRICS_FILE = "metrics.json"
_SEED_PREFIX = "seed="
_DIGITS = re.compile(r"(\d+)", re.ASCII)


# ------------------------------------------------------------------------------------------
# Finding the runs
# ------------------------------------------------------------------------------------------
def _natural_key(text: str):
    """``"num_modules=2"`` before ``"num_modules=10"``: digit runs compare as numbers."""
    parts = _DIGITS.split(text)
    # re.split with one capturing group alternates text (even) and digits (odd).
    return [int(p) if i % 2 else p for i, p in enumerate(parts)], text


def _seed_key(seed: Any):
    if isinstance(seed, int):
        return 0, seed, ""
    return 1, 0, str(seed)


def _scan(root: Path) -> Tuple[List[Path], List[Path]]:
    """(run folders holding metrics.json, seed folders without it), in natural order."""
    runs: List[Path] = []
    incomplete: List[Path] = []

    def visit(folder: Path, is_root: bool) -> None:
        if (folder / METRICS_FILE).is_file():
            runs.append(folder)
            return
        if not is_root and folder.name.startswith(_SEED_PREFIX):
            incomplete.append(folder)
            return
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: _natural_key(e.name))
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            visit(Path(entry.path), False)

    visit(root, True)
    return runs, incomplete


def _load_metrics(path: Path) -> Dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def _group_dir(run: Path) -> Path:
    return run.parent if run.name.startswith(_SEED_PREFIX) else run


def _parts(root: Path, folder: Path) -> Tuple[str, ...]:
    """Path of ``folder`` below ``root`` as names; () for root itself or a folder above it."""
    rel = os.path.relpath(folder, root)
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return ()
    return Path(rel).parts


def _root_is_experiment(root_name: str, depth1: List[Tuple[Tuple[str, ...], Optional[dict]]],
                        depths: set) -> bool:
    """Whether ``root`` is one experiment's folder (its sub-folders: variants) or a sweep."""
    if 0 in depths:
        return True
    if any(d >= 2 for d in depths):
        return False
    # Every group one level down: DIR/<experiment>/seed=s or DIR/<variant>/seed=s.  The
    # runner's "experiment" and "variant" entries decide; failing them, "=" marks a variant.
    as_experiment = as_sweep = 0
    for parts, data in depth1:
        if data is None:
            continue
        exp, var = data.get("experiment"), data.get("variant")
        if isinstance(var, str) and var and var == parts[0]:
            as_experiment += 1
        elif isinstance(exp, str) and exp == parts[0]:
            as_sweep += 1
        elif isinstance(exp, str) and exp == root_name:
            as_experiment += 1
    if as_experiment != as_sweep:
        return as_experiment > as_sweep
    return all("=" in parts[0] for parts, _ in depth1)


def _seed_of(run: Path, data: Optional[dict]) -> Any:
    if run.name.startswith(_SEED_PREFIX):
        text = run.name[len(_SEED_PREFIX):]
        try:
            return int(text)
        except ValueError:
            return text
    seed = None if data is None else data.get("seed")
    if isinstance(seed, bool):
        return None
    if isinstance(seed, (int, str)):
        return seed
    return None


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------
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
    # strings, booleans, empty or mixed lists: ignored


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


def _aggregate_section(blocks: List[Any]) -> Dict[str, Any]:
    """Aggregate one section (``metrics`` or ``before_learning``) over the runs' blocks."""
    scalars: Dict[str, List[float]] = {}
    arrays: Dict[str, List[np.ndarray]] = {}
    rules = None
    for block in blocks:
        if not isinstance(block, dict):
            continue
        run_scalars: Dict[str, Optional[float]] = {}
        run_arrays: Dict[str, np.ndarray] = {}
        for key, value in _align_modules(block).items():
            if key == "rules":
                if rules is None and isinstance(value, list):
                    rules = list(value)
                continue
            _flatten(value, str(key), run_scalars, run_arrays)
        for name, x in run_scalars.items():
            values = scalars.setdefault(name, [])
            if x is not None:
                values.append(x)
        for name, arr in run_arrays.items():
            arrays.setdefault(name, []).append(arr)
    out: Dict[str, Any] = {}
    for name in sorted(set(scalars) | set(arrays), key=_natural_key):
        values = scalars.get(name, [])
        if name in arrays and not values:
            out[name] = _array_stats(arrays[name])
        else:   # a scalar in some runs and null (or, oddly, a list) in others
            out[name] = _scalar_stats(values)
    if rules is not None:
        out["rules"] = rules
    return out


def _aggregate_group(root: Path, runs: List[Tuple[Path, dict]],
                     incomplete: List[Path]) -> Dict[str, Any]:
    runs = sorted(runs, key=lambda r: (_seed_key(_seed_of(r[0], r[1])), _natural_key(r[0].name)))
    seeds = [_seed_of(path, data) for path, data in runs]

    def top_level(key: str) -> Dict[str, Any]:
        values = [_as_float(d.get(key)) if _is_number(d.get(key)) else None for _, d in runs]
        return _scalar_stats([v for v in values if v is not None])

    def distinct(key: str) -> List[str]:
        found: List[str] = []
        for _, data in runs:
            value = data.get(key)
            if isinstance(value, str) and value and value not in found:
                found.append(value)
        return found

    return {
        "n": len(runs),
        "seeds": sorted((s for s in seeds if s is not None), key=_seed_key),
        "runs": [_relative(root, path) for path, _ in runs],
        "incomplete": [_relative(root, path) for path in incomplete],
        "commits": distinct("commit"),
        "machines": distinct("machine"),
        "steps": top_level("steps"),
        "train_seconds": top_level("train_seconds"),
        "metrics": _aggregate_section([d.get("metrics") for _, d in runs]),
        "before_learning": _aggregate_section([d.get("before_learning") for _, d in runs]),
    }


def _relative(root: Path, path: Path) -> str:
    parts = _parts(root, path)
    return "/".join(parts) if parts else "."


def _check_root(root: PathLike) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"the sweep folder must be a str or os.PathLike, got {type(root).__name__}")
    path = Path(root)
    if not path.exists():
        raise FileNotFoundError(f"{os.fspath(root)}: no such folder")
    if not path.is_dir():
        raise ValueError(f"{os.fspath(root)} is not a folder")
    return path


def aggregate(root: PathLike) -> Dict[str, Any]:
    """Aggregate the runs under ``root`` (see the module docstring for the layout).

    Returns ``{"root": str(root), "experiments": {experiment: {variant: group}}}``, experiments
    and variants in natural order (``num_modules=2`` before ``num_modules=10``; ``""`` for an
    experiment without variants).  A group holds ``n`` (runs aggregated), ``seeds`` (sorted),
    ``runs`` and ``incomplete`` (run folders relative to ``root``), ``commits``, ``machines``,
    ``steps`` and ``train_seconds`` (scalar statistics) and ``metrics`` and ``before_learning``:
    ``{name: {"mean", "std", "n", "values"}}`` for scalars, ``{name: {"mean", "std", "n"}}`` with
    nested lists for arrays (element-wise; ``"note"`` and null mean when the shapes differ), and
    ``rules`` as in the first run.  Every float is finite or None.

    Raises ``FileNotFoundError`` (no such ``root``), ``ValueError`` (``root`` is not a folder,
    holds no ``metrics.json``, or one of them is not a JSON object).
    """
    path = _check_root(root)
    run_dirs, unfinished = _scan(path)
    if not run_dirs:
        extra = f" ({len(unfinished)} unfinished runs)" if unfinished else ""
        raise ValueError(f"no {METRICS_FILE} under {os.fspath(root)}{extra}")
    loaded = [(run, _load_metrics(run / METRICS_FILE)) for run in run_dirs]

    group_of = {run: _parts(path, _group_dir(run)) for run in run_dirs + unfinished}
    depths = {len(parts) for parts in group_of.values()}
    depth1 = [(group_of[run], data) for run, data in loaded if len(group_of[run]) == 1]
    depth1 += [(group_of[run], None) for run in unfinished if len(group_of[run]) == 1]
    root_name = path.resolve().name or os.fspath(root)
    root_is_experiment = _root_is_experiment(root_name, depth1, depths)

    # Runs only straight in root (or root a run): root may be an experiment's folder, a
    # variant's folder or a seed folder; the runner's own names decide when they fit.
    single = None
    if depths == {0}:
        base = _group_dir(loaded[0][0].resolve()).name or root_name
        single = (base, "")
        exps = {d.get("experiment") for _, d in loaded}
        vars_ = {d.get("variant") for _, d in loaded}
        if len(exps) == 1 and len(vars_) == 1:
            exp, var = exps.pop(), vars_.pop()
            if isinstance(exp, str) and exp and isinstance(var, str) and \
                    (var == base if var else exp == base):
                single = (exp, var)

    def key_of(run: Path) -> Tuple[str, str]:
        parts = group_of[run]
        if single is not None:
            return single
        if root_is_experiment:
            return root_name, "/".join(parts)
        return parts[0], "/".join(parts[1:])

    groups: Dict[Tuple[str, str], Tuple[list, list]] = {}
    for run, data in loaded:
        groups.setdefault(key_of(run), ([], []))[0].append((run, data))
    for run in unfinished:
        groups.setdefault(key_of(run), ([], []))[1].append(run)

    experiments: Dict[str, Dict[str, Any]] = {}
    for exp, var in sorted(groups, key=lambda k: (_natural_key(k[0]), _natural_key(k[1]))):
        done, todo = groups[(exp, var)]
        experiments.setdefault(exp, {})[var] = _aggregate_group(path, done, todo)
    return {"root": os.fspath(root), "experiments": experiments}


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------
def _is_scalar_stat(stat: Any) -> bool:
    return isinstance(stat, dict) and "values" in stat


def _columns(groups: Sequence[Dict[str, Any]], section: str) -> List[str]:
    names = set()
    for group in groups:
        for name, stat in group[section].items():
            if not _is_scalar_stat(stat) or stat["n"] == 0:
                continue
            if "." in name and not name.startswith(_TABLE_DICT_PREFIXES):
                continue
            names.add(name)
    first = [name for name in TABLE_ORDER if name in names]
    return first + sorted(names - set(first), key=_natural_key)


def _fmt(x: float, big: bool) -> str:
    return f"{x:.1f}" if big else f"{x:.3f}"


def _cell(stat: Optional[Dict[str, Any]], group_n: int, integer: bool = False) -> str:
    """``mean ± std`` (3 decimals; 1 decimal from 100 on), ``(n=k)`` when seeds lack it."""
    if not _is_scalar_stat(stat) or stat["n"] == 0 or stat["mean"] is None:
        return "—"
    mean, std = stat["mean"], stat["std"]
    if integer and std == 0.0 and float(mean).is_integer():
        text = f"{int(mean)}"
    else:
        big = abs(mean) >= 100 or (std is not None and abs(std) >= 100)
        text = f"{_fmt(mean, big)} ± {'—' if std is None else _fmt(std, big)}"
    if stat["n"] < group_n:
        text += f" (n={stat['n']})"
    return text


def _variant_label(variant: str) -> str:
    return variant if variant else "—"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(groups: Dict[str, Dict[str, Any]], section: str, columns: List[str],
           extra: Sequence[Tuple[str, str]] = ()) -> List[str]:
    header = ["variant", "seeds"] + columns + [label for _, label in extra]
    lines = ["| " + " | ".join(_escape(h) for h in header) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for variant, group in groups.items():
        seeds = ", ".join(str(s) for s in group["seeds"]) or "—"
        cells = [_escape(_variant_label(variant)), _escape(seeds)]
        cells += [_cell(group[section].get(name), group["n"]) for name in columns]
        cells += [_cell(group.get(key), group["n"], integer=(key == "steps")) for key, _ in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Dict[str, Any], figures: Sequence[str] = ()) -> str:
    """The ``report.md`` text of an :func:`aggregate` result.

    ``figures``: file names (relative to ``report.md``) of the figures to link, e.g.
    ``["module_count_scalars.png"]``; each is linked under its experiment's section.
    """
    experiments = report["experiments"]
    num_runs = sum(g["n"] for groups in experiments.values() for g in groups.values())
    num_open = sum(len(g["incomplete"]) for groups in experiments.values()
                   for g in groups.values())
    lines = [f"# Sweep report: `{report['root']}`", "",
             f"{num_runs} finished runs, {num_open} incomplete, in {len(experiments)} "
             f"experiment(s).  Cells: mean ± sample standard deviation over seeds (ddof=1); "
             f"`(n=k)`: only k of the group's runs report the metric.", ""]
    for exp, groups in experiments.items():
        lines += [f"## {exp}", ""]
        provenance = []
        for key, label in (("commits", "commit"), ("machines", "machine")):
            found: List[str] = []
            for group in groups.values():
                found += [v for v in group[key] if v not in found]
            if found:
                provenance.append(f"{label}: " + ", ".join(f"`{v}`" for v in found))
        if provenance:
            lines += ["; ".join(provenance), ""]
        extra = [(key, label) for key, label in (("steps", "steps"), ("train_seconds", "train s"))
                 if any(g[key]["n"] for g in groups.values())]
        lines += _table(groups, "metrics", _columns(groups.values(), "metrics"), extra)
        lines.append("")
        unfinished = [path for group in groups.values() for path in group["incomplete"]]
        if unfinished:
            lines.append(f"Incomplete runs (no {METRICS_FILE}), not aggregated:")
            lines += [f"- `{path}`" for path in unfinished]
            lines.append("")
        before = _columns(groups.values(), "before_learning")
        if before:
            lines += ["Before learning:", ""]
            lines += _table(groups, "before_learning", before)
            lines.append("")
        for name in figures:
            if name in (_figure_name(exp, "scalars"), _figure_name(exp, "usage"),
                        _figure_name(exp, "samples")):
                lines += [f"![{exp}: {name}]({name})", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------------
# Figures (object-oriented matplotlib on an Agg canvas: no pyplot, no backend change)
# ------------------------------------------------------------------------------------------
def _figure_name(experiment: str, kind: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._=+-]+", "_", experiment).strip("._") or "experiment"
    return f"{safe}_{kind}.png"


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    fig.clear()
    return buf.getvalue()


def _points(groups: List[Tuple[str, Dict[str, Any]]], section: str, name: str):
    xs, means, stds = [], [], []
    for i, (_, group) in enumerate(groups):
        stat = group[section].get(name)
        if _is_scalar_stat(stat) and stat["mean"] is not None:
            xs.append(i)
            means.append(stat["mean"])
            stds.append(stat["std"] or 0.0)
    return xs, means, stds


def _scalars_png(experiment: str, groups: Dict[str, Dict[str, Any]]) -> Optional[bytes]:
    done = [(v, g) for v, g in groups.items() if g["n"] > 0]
    names = [m for m in FIGURE_METRICS if _points(done, "metrics", m)[0]]
    if not done or not names:
        return None
    labels = [_variant_label(v) for v, _ in done]
    rotate = sum(len(label) for label in labels) > 24
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    width = max(3.2, 0.5 * len(done) + 2.0)
    height = 2.7 + (0.5 if rotate else 0.0)
    fig = _new_figure(ncols * width, nrows * height + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    any_before = False
    for ax, name in zip(axes.flat, names):
        xs, means, stds = _points(done, "metrics", name)
        ax.errorbar(xs, means, yerr=stds, fmt="o", capsize=3, color="tab:blue", label="trained")
        bxs, bmeans, bstds = _points(done, "before_learning", name)
        if bxs:
            any_before = True
            ax.errorbar([x + 0.15 for x in bxs], bmeans, yerr=bstds, fmt="s", mfc="none",
                        capsize=3, color="tab:gray", label="before learning")
        ax.set_xticks(np.arange(len(done)))
        ax.set_xticklabels(labels, fontsize=7, rotation=30 if rotate else 0,
                           ha="right" if rotate else "center")
        ax.set_xlim(-0.5, len(done) - 0.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if any_before:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{experiment}: mean ± std over seeds", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.5 / (nrows * height + 0.5),
                        bottom=(0.9 if rotate else 0.5) / (nrows * height + 0.5),
                        wspace=0.3, hspace=0.75 if rotate else 0.5)
    return _png(fig)


def _usage_png(experiment: str, groups: Dict[str, Dict[str, Any]]) -> Optional[bytes]:
    items = []
    for variant, group in groups.items():
        stat = group["metrics"].get("confusion")
        if not isinstance(stat, dict) or stat.get("mean") is None:
            continue
        conf = np.array(stat["mean"], dtype=np.float64)
        if conf.ndim != 2 or conf.size == 0:
            continue
        conf = np.where(np.isfinite(conf) & (conf > 0), conf, 0.0)
        totals = conf.sum(axis=1, keepdims=True)
        frac = np.divide(conf, totals, out=np.zeros_like(conf), where=totals > 0)
        rules = group["metrics"].get("rules")
        if not (isinstance(rules, list) and len(rules) == conf.shape[0]):
            rules = [str(r) for r in range(conf.shape[0])]
        items.append((variant, frac, [str(r) for r in rules]))
    if not items:
        return None
    ncols = min(3, len(items))
    nrows = -(-len(items) // ncols)
    max_m = max(f.shape[1] for _, f, _ in items)
    max_r = max(f.shape[0] for _, f, _ in items)
    cell_w = max(3.0, 0.45 * max_m + 1.6)
    cell_h = max(2.6, 0.4 * max_r + 1.4)
    fig = _new_figure(ncols * cell_w + 0.8, nrows * cell_h + 0.85)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for ax, (variant, frac, rules) in zip(axes.flat, items):
        image = ax.imshow(frac, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        num_rules, num_modules = frac.shape
        size = 7 if num_modules <= 6 else 5
        for r in range(num_rules):
            for m in range(num_modules):
                ax.text(m, r, f"{frac[r, m]:.2f}", ha="center", va="center", fontsize=size,
                        color="black" if frac[r, m] > 0.6 else "white")
        ax.set_xticks(np.arange(num_modules))
        ax.set_yticks(np.arange(num_rules))
        ax.set_yticklabels(rules, fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_xlabel("module", fontsize=8)
        ax.set_ylabel("rule", fontsize=8)
        ax.set_title(_variant_label(variant), fontsize=9)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    total_h = nrows * cell_h + 0.85
    fig.suptitle(f"{experiment}: P(module | rule), mean over seeds\n"
                 f"module r: the one assigned to rule r in each run", fontsize=9)
    fig.subplots_adjust(left=0.9 / (ncols * cell_w + 0.8), right=0.88,
                        top=1 - 0.85 / total_h, bottom=0.6 / total_h, wspace=0.45, hspace=0.6)
    cax = fig.add_axes([0.91, 0.6 / total_h, 0.015, 1 - 1.45 / total_h])
    fig.colorbar(image, cax=cax)
    cax.tick_params(labelsize=7)
    return _png(fig)


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------
#: Table 1's models, in the order of the Fig. 8-style figure's rows
TABLE1_MODELS = ("rim", "scoff", "vim")


def _table1_samples_png(root: PathLike, groups: Dict[str, Any]) -> Optional[bytes]:
    """Fig. 8-style one-step samples (``table1_samples.png``) of the lowest seed whose RIM,
    SCOFF and VIM runs all kept a checkpoint: one held-out video, the truth, RIM's and SCOFF's
    teacher-forced frames and two samples of VIM's prior (None when there is no such seed)."""
    if not all(v in groups for v in TABLE1_MODELS):
        return None
    base = Path(root) / "table1" if (Path(root) / "table1").is_dir() else Path(root)
    seeds = sorted(set.intersection(*(set(groups[v]["seeds"]) for v in TABLE1_MODELS)))
    for seed in seeds:
        paths = {v: base / v / f"seed={seed}" / "checkpoint.pt" for v in TABLE1_MODELS}
        if all(p.is_file() for p in paths.values()):
            break
    else:
        return None
    import torch

    from .baselines.table1 import SEQ_LEN, sample_rows
    from .evaluate import default_seed
    from .models import load_model
    from .viz import plot_image_rows
    models = {v.upper(): load_model(str(p)).eval()
              for v, p in paths.items()}
    config = models["VIM"].config
    rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(default_seed(config))
        video = config.make_generator().generate(1, SEQ_LEN, default_seed(config) + 7).frames
        rows = sample_rows(models, video)
    finally:
        torch.random.set_rng_state(rng)
    fig = plot_image_rows(rows, column_titles=[f"t={t}" for t in range(1, SEQ_LEN)],
                          title=f"one step ahead, seed {seed}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _build(root: PathLike) -> Tuple[Dict[str, Any], str, Dict[str, bytes]]:
    """Everything to write, computed in memory: (report, markdown, {file name: bytes})."""
    report = json_ready(aggregate(root))
    files: Dict[str, bytes] = {}
    for exp, groups in report["experiments"].items():
        for kind, render in (("scalars", _scalars_png), ("usage", _usage_png)):
            png = render(exp, groups)
            if png is not None:
                files[_figure_name(exp, kind)] = png
    png = _table1_samples_png(root, report["experiments"].get("table1", {}))
    if png is not None:
        files[_figure_name("table1", "samples")] = png
    markdown = render_markdown(report, figures=list(files))
    files["report.md"] = markdown.encode("utf-8")
    text = json.dumps(report, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    files["report.json"] = text.encode("utf-8")     # last: its presence means all is there
    return report, markdown, files


def _write(out: PathLike, files: Dict[str, bytes]) -> List[Path]:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, payload in files.items():
        atomic_write(folder / name, payload)
        written.append(folder / name)
    return written


def write_report(root: PathLike, out: Optional[PathLike] = None) -> Dict[str, Any]:
    """Aggregate the runs under ``root`` and write ``report.json``, ``report.md`` and the
    figures into ``out`` (default ``root``; created if needed).  Nothing is written unless
    every run could be read.  Returns the aggregate (the content of ``report.json``)."""
    report, _, files = _build(root)
    _write(root if out is None else out, files)
    return report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyro_vim.report",
        description="Aggregate the runs of a sweep (folders holding metrics.json) into mean ± std "
                    "tables (report.md, report.json) and figures.")
    p.add_argument("dir", help="sweep folder written by the experiment runner (or one "
                               "experiment's folder)")
    p.add_argument("--out", default=None, help="output folder (default: DIR)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        _, markdown, files = _build(args.dir)
        written = _write(args.dir if args.out is None else args.out, files)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
