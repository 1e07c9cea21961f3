"""The figures of a report, as PNG bytes: ``<experiment>_scalars.png`` (the headline metrics
against the variants, trained and before learning) and ``<experiment>_usage.png`` (per variant
the mean rule x module confusion, modules aligned to rules per run, normalised per row).

Object-oriented matplotlib on an Agg canvas: no pyplot, no backend change.
"""
from __future__ import annotations

import io
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
