"""The command line of the report (``python -m pyro_vim.report DIR [--out OUT]
[--reproduction [PATH]]``).

Aggregates the runs under ``DIR`` (:mod:`pyro_vim.report.runs` describes the layout) and writes
``report.json``, ``report.md`` and the figures into ``OUT`` (default ``DIR``); prints the
Markdown and the paths written.  ``--reproduction`` also writes REPRODUCTION.md, the paper's
results against ours (:mod:`pyro_vim.report.reproduction`), to ``PATH``: by default
``DIR/REPRODUCTION.md``, beside the runs it comes from, so that the repository's own file is
replaced only on purpose (``--reproduction REPRODUCTION.md`` from the repository root).

A missing ``DIR``, one that is not a folder or holds no ``metrics.json``, a ``metrics.json``
that is not valid JSON, or a ``--reproduction`` path in a folder that does not exist prints
``error: ...`` on stderr and exits with status 2, writing nothing.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..files import atomic_write
from .reproduction import render_reproduction, reproduction_path
from .writing import _build, _write

#: ``--reproduction`` without a path: DIR/REPRODUCTION.md
_BESIDE_RUNS = object()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pyro_vim.report",
        description="Aggregate the runs of a sweep (folders holding metrics.json) into mean ± std "
                    "tables (report.md, report.json) and figures.")
    p.add_argument("dir", help="sweep folder written by the experiment runner (or one "
                               "experiment's folder)")
    p.add_argument("--out", default=None, help="output folder (default: DIR)")
    p.add_argument("--reproduction", nargs="?", const=_BESIDE_RUNS, default=None,
                   metavar="PATH",
                   help="also write REPRODUCTION.md (the paper's results against the runs) to "
                        "PATH (default: DIR/REPRODUCTION.md; a folder: PATH/REPRODUCTION.md)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        _, markdown, files = _build(args.dir)
        target, text = None, None
        if args.reproduction is not None:       # computed before anything is written
            target = reproduction_path(args.dir, None if args.reproduction is _BESIDE_RUNS
                                       else args.reproduction)
            text = render_reproduction(args.dir, target.parent)
        written = _write(args.dir if args.out is None else args.out, files)
        if target is not None:
            atomic_write(target, text)
            written.append(target)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown)
    for path in written:
        print(f"wrote {path}")
    return 0
