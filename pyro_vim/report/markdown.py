"""``report.md``: per experiment a ``mean ± std`` table (one row per variant), a "before
learning" table, the incomplete runs and links to the figures (:func:`render_markdown`)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from .aggregation import _variant_label
from .figures import _figure_name
from .runs import METRICS_FILE, _natural_key
from .statistics import _is_scalar_stat

#: Columns that lead the Markdown tables (when present); the other scalars follow, sorted.
TABLE_ORDER = ("rule_module_accuracy", "track_rule_module_accuracy", "nmi",
               "module_step_error_max", "position_error", "recon_mse", "kl_z", "kl_r")


#: Dict-expanded entries (``key.sub``) shown in the Markdown tables; the others are JSON only.
_TABLE_DICT_PREFIXES = ("module_step_error.",)


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
        extra = [(key, label) for key, label in (("steps", "steps"), ("train_seconds", "train s"),
                                                 ("train_minutes", "train min"))
                 if any(g.get(key, {}).get("n") for g in groups.values())]
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
        stops = [(v, g["stopped_by"]) for v, g in groups.items() if g.get("stopped_by")]
        if any(set(by) != {"steps"} for _, by in stops):
            lines.append("What ended the training (runs): " + "; ".join(
                f"{_escape(_variant_label(v))}: " + ", ".join(f"{k} {n}" for k, n in by.items())
                for v, by in stops))
            lines.append("")
        refs = report.get("learning_curve_references", {}).get(exp)
        for name in figures:
            if name in (_figure_name(exp, "scalars"), _figure_name(exp, "usage"),
                        _figure_name(exp, "samples"), _figure_name(exp, "learning_curves")):
                lines += [f"![{exp}: {name}]({name})", ""]
            if name == _figure_name(exp, "learning_curves") and refs:
                lines += ["Validation references (squared error per frame on the same held-out "
                          "frames): " + ", ".join(f"{k.replace('_', ' ')} {v:.2f}"
                                                 for k, v in refs.items()), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
