"""Writing a report: everything computed in memory first, then each file written atomically.

Into ``OUT``: ``report.json`` (the :func:`~pyro_vim.report.aggregate` result, strict JSON with
NaN as ``null``; written last, so its presence means everything is there), ``report.md``, and
the figures (:mod:`pyro_vim.report.figures`, :mod:`pyro_vim.report.samples`).  Nothing is
written unless every run could be read (:func:`write_report`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..files import atomic_write, json_ready
from .aggregation import aggregate
from .curves import validation_references
from .figures import _figure_name, _learning_curves_png, _scalars_png, _usage_png
from .markdown import render_markdown
from .runs import PathLike
from .samples import _table1_samples_png


def _build(root: PathLike) -> Tuple[Dict[str, Any], str, Dict[str, bytes]]:
    """Everything to write, computed in memory: (report, markdown, {file name: bytes})."""
    report = json_ready(aggregate(root))
    files: Dict[str, bytes] = {}
    references: Dict[str, Any] = {}
    for exp, groups in report["experiments"].items():
        for kind, render in (("scalars", _scalars_png), ("usage", _usage_png)):
            png = render(exp, groups)
            if png is not None:
                files[_figure_name(exp, kind)] = png
        curves = [g for g in groups.values() if "learning_curve" in g]
        if curves:        # the reference lines: the validation videos of the first such group
            refs = validation_references(root, curves[0]["runs"])
            if refs:
                references[exp] = refs
            png = _learning_curves_png(exp, groups, refs)
            if png is not None:
                files[_figure_name(exp, "learning_curves")] = png
    if references:
        report["learning_curve_references"] = json_ready(references)
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
