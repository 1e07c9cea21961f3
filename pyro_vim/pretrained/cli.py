"""The command line of the shipped checkpoints (``python -m pyro_vim.pretrained``).

    python -m pyro_vim.pretrained list                    # names, runs, sizes, headline metrics
    python -m pyro_vim.pretrained ship RUN_DIR NAME [--replace]

``ship`` copies a complete run's checkpoint into the package (:mod:`pyro_vim.pretrained.shipping`);
bad input prints ``error: ...`` and exits with status 2, writing nothing.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from .loading import names
from .manifest import MAX_TOTAL_BYTES, read_manifest
from .shipping import ship

_HEADLINES = ("rule_module_accuracy", "module_step_error_max", "transfer_error_mean",
              "interactions_rollout_best_10")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyro_vim.pretrained",
                                description="List or ship the pretrained checkpoints "
                                            "(pyro_vim.pretrained(NAME) loads one).")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped checkpoints")
    s = sub.add_parser("ship", help="copy a complete run's checkpoint into the package")
    s.add_argument("run_dir", help="a complete run's folder, e.g. runs/interactions/binary/seed=0")
    s.add_argument("name", help="the name pyro_vim.pretrained(NAME) will load it by")
    s.add_argument("--replace", action="store_true", help="replace a checkpoint of that name")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "ship":
        try:
            entry = ship(args.run_dir, args.name, replace=args.replace)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"shipped {args.name}: {entry['file']} ({entry['bytes'] / 1e6:.2f} MB, "
              f"commit {entry['commit']}); trained by: {entry['command']}")
        return 0
    manifest = read_manifest()
    total = sum(int(e.get("bytes", 0)) for e in manifest.values())
    for name in names():
        e = manifest[name]
        heads = ", ".join(f"{k} {e['metrics'][k]:.3f}" for k in _HEADLINES
                          if isinstance((e.get("metrics") or {}).get(k), (int, float)))
        print(f"{name}: {e['experiment']}{'/' + e['variant'] if e.get('variant') else ''} "
              f"seed {e['seed']}, commit {e['commit']}, {e['bytes'] / 1e6:.2f} MB; {heads}")
        print(f"    {e['command']}")
    print(f"{len(manifest)} shipped, {total / 1e6:.2f} of {MAX_TOTAL_BYTES / 1e6:.0f} MB")
    return 0
