"""The figures of a report, as PNG bytes: ``<experiment>_scalars.png`` (the headline metrics
against the variants, trained and before learning), ``<experiment>_usage.png`` (per variant
the mean rule x module confusion, modules aligned to rules per run, normalised per row) and
``<experiment>_learning_curves.png`` (the validation error of every variant against training
minutes and steps, mean ± std over seeds, with the before-learning values and model-free
references; :mod:`pyro_vim.report.curves`).

Object-oriented matplotlib on an Agg canvas: no pyplot, no backend change.
"""
from __future__ import annotations

import io
import math
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .aggregation import _variant_label
from .statistics import _is_scalar_stat

#: Metrics drawn in ``<experiment>_scalars.png`` (when present), in this order.
FIGURE_METRICS = ("rule_module_accuracy", "recon_mse", "kl_z", "kl_r",
                  "module_step_error_max", "position_error")


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


#: Line styles of the variants of one family (``rim@15min``, ``rim@60min``, ...), in order.
_CURVE_STYLES = ("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)))


def _family(variant: str) -> str:
    return variant.split("@", 1)[0]


def _learning_curves_png(experiment: str, groups: Dict[str, Dict[str, Any]],
                         references: Optional[Dict[str, float]] = None) -> Optional[bytes]:
    """``<experiment>_learning_curves.png``: the validation error of every variant against the
    training minutes (left) and the steps (right), mean over seeds with a ± std band, a dotted
    line per family at its before-learning value, and the reference errors (``references``:
    ``empty_frame``, ``best_deterministic``) as grey lines.  Variants ``family@budget`` share
    their family's colour, one line style per budget.  None when no variant has a curve."""
    items = [(v, g["learning_curve"]) for v, g in groups.items()
             if isinstance(g.get("learning_curve"), dict) and g["learning_curve"].get("steps")]
    if not items:
        return None
    import matplotlib

    families: List[str] = []
    for variant, _ in items:
        if _family(variant) not in families:
            families.append(_family(variant))
    cmap = matplotlib.colormaps["tab10"]
    colour = {f: cmap(i % 10) for i, f in enumerate(families)}
    seen_in_family: Dict[str, int] = {}
    entries = len(items) + len(families) + 2                     # the legend's lines, at most
    rows = -(-entries // 4)
    legend_h = 0.2 * rows + 0.3
    height = 4.2 + legend_h
    fig = _new_figure(12.0, height)
    ax_min, ax_step = fig.subplots(1, 2)
    values: List[float] = []
    before_drawn = set()
    for variant, curve in items:
        fam = _family(variant)
        style = _CURVE_STYLES[seen_in_family.get(fam, 0) % len(_CURVE_STYLES)]
        seen_in_family[fam] = seen_in_family.get(fam, 0) + 1
        keep = [i for i, m in enumerate(curve["mean"]) if m is not None]
        if not keep:
            continue
        mean = np.array([curve["mean"][i] for i in keep], dtype=np.float64)
        std = np.array([curve["std"][i] or 0.0 for i in keep], dtype=np.float64)
        values += list(mean)
        label = f"{_variant_label(variant)} (n={curve['runs']})"
        for ax, xs in ((ax_min, curve["minutes"]), (ax_step, curve["steps"])):
            x = np.array([xs[i] for i in keep], dtype=np.float64)
            ax.plot(x, mean, linestyle=style, color=colour[fam], lw=1.4, label=label)
            ax.fill_between(x, mean - std, mean + std, color=colour[fam], alpha=0.15, lw=0)
        before = curve.get("before") or {}
        if fam not in before_drawn and before.get("mean") is not None:
            before_drawn.add(fam)
            values.append(before["mean"])
            for ax in (ax_min, ax_step):
                ax.axhline(before["mean"], color=colour[fam], linestyle=":", lw=1.0,
                           label=f"{fam} before learning" if ax is ax_min else None)
    for name, label, style in (("empty_frame", "empty frame", (0, (8, 3))),
                               ("best_deterministic", "best deterministic prediction",
                                (0, (2, 2)))):
        value = (references or {}).get(name)
        if value is not None and math.isfinite(value):
            values.append(value)
            for ax in (ax_min, ax_step):
                ax.axhline(value, color="0.35", linestyle=style, lw=1.2,
                           label=label if ax is ax_min else None)
    positive = [v for v in values if v > 0]
    log_scale = bool(positive) and max(positive) / min(positive) > 20
    for ax, xlabel in ((ax_min, "training minutes (mean over seeds)"), (ax_step, "step")):
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("validation error (squared error per frame)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if log_scale:
            ax.set_yscale("log")
    handles, labels = ax_min.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.suptitle(f"{experiment}: one-step validation error on held-out frames 1.., mean ± std "
                 f"over seeds", fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, top=1 - 0.45 / height,
                        bottom=(legend_h + 0.55) / height, wspace=0.22)
    return _png(fig)
