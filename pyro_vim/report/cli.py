"""The command line of the report (``python -m pyro_vim.report DIR [--out OUT]``).

Aggregates the runs under ``DIR`` (:mod:`pyro_vim.report.runs` describes the layout) and writes
``report.json``, ``report.md`` and the figures into ``OUT`` (default ``DIR``); prints the
Markdown and the paths written.  A missing ``DIR``, one that is not a folder or holds no
``metrics.json``, or a ``metrics.json`` that is not valid JSON prints ``error: ...`` on stderr
and exits with status 2, writing nothing.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .writing import _build, _write


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
