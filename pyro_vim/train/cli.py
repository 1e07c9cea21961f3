"""The training command line, ``python -m pyro_vim.train``.

    python -m pyro_vim.train                          # Random Walk, cpu preset (without CUDA)
    python -m pyro_vim.train --data my_videos --out runs/mine      # a directory of .npz shards
    python -m pyro_vim.train --set data.name=compositional --out runs/comp   # another generator
    python -m pyro_vim.train --preset paper --device cuda --out runs/paper
    python -m pyro_vim.train --out runs/rw --resume   # continue exactly where it stopped
    python -m pyro_vim.train --set prior=uniform data.step=4 num_slots=5    # any config key
    python -m pyro_vim.train --keys                   # the keys --set takes
    torchrun --nproc_per_node=2 -m pyro_vim.train --out runs/ddp          # data-parallel

Writes OUT/checkpoint.pt and OUT/log.jsonl and prints the final held-out metrics as one JSON
line (the rule-module accuracy on generated data).  ``--data DIR`` trains on recorded videos
(``data.name=npz data.path=DIR``, :mod:`pyro_vim.data.shards`): ``image_size`` follows the
frames, and the pixel-unit settings (``selection_scale``, ``mask_extent``, ``z_pos_scale``,
``module_init_scale``) follow the objects' size and step, declared in ``DIR/dataset.json`` or
measured on the first videos (:mod:`pyro_vim.data.scales`); the command prints them and where
they came from, and the values set with ``--set`` win.

Bad arguments (a non-positive size, an OUT that already holds a run without --resume, --resume
without a checkpoint, a checkpoint of another config, a bad dataset.json, ...) stop with
``error: ...`` and exit status 2 before anything is written: OUT is not created and an existing
run is left untouched.  A non-finite loss or a full disk stops training with exit status 1
(the last good checkpoint is kept).  ``examples/train_random_walk.py`` is this command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional, Sequence, Tuple

import torch

from ..checkpoint import CheckpointWriteError, load_checkpoint
from ..config import PRESETS, VIMConfig
from ..data.scales import SCALE_RULES, DatasetJSONError, apply_data_scales
from ..distributed import DistributedSetupError, shutdown
from ..nn.accel import PRECISIONS
from ..overrides import apply_overrides, config_keys, parse_overrides
from ..rundir import RunDirBusy
from .trainer import NonFiniteError, Trainer

__all__ = ["build_parser", "parse_args", "check_args", "build_config", "resolve_config",
           "main", "cli"]


class _KeysAction(argparse.Action):
    """``--keys``: print every key ``--set`` takes and exit."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print("\n".join(config_keys()))
        parser.exit()


def build_parser(prog: Optional[str] = "python -m pyro_vim.train",
                 description: Optional[str] = None,
                 out_default: str = "runs/train") -> argparse.ArgumentParser:
    """The command's options (``examples/train_random_walk.py`` uses them with its own name and
    default ``--out``)."""
    p = argparse.ArgumentParser(
        prog=prog, description=description or "Train VIM (or another registered model) on "
        "generated Random Walk data or on a directory of .npz shards.")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="train on the .npz shards of DIR (data.name=npz data.path=DIR); the "
                        "pixel-unit settings follow DIR/dataset.json ({\"object_size\": px, "
                        "\"step\": px}) or are measured on the first videos")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="experiment preset (default: paper with CUDA, cpu otherwise)")
    p.add_argument("--steps", type=int, default=None,
                   help="total optimisation steps, pre-training included (default: preset's)")
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None,
                   help="videos per step and per process (under torchrun: per rank)")
    p.add_argument("--global-batch-size", type=int, default=None,
                   help="videos per step over all processes (split evenly across the ranks of a "
                        "torchrun launch; instead of --batch-size)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="fix the sequence length (disables the curriculum)")
    p.add_argument("--num-modules", type=int, default=None)
    p.add_argument("--num-slots", type=int, default=None)
    p.add_argument("--eval-every", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=out_default, help=f"run folder (default: {out_default})")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip steps with a non-finite ELBO or gradient instead of stopping")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE",
                   help="config overrides applied last, e.g. prior=uniform data.step=4 "
                        "data.name=compositional (--keys lists the keys)")
    p.add_argument("--keys", action=_KeysAction, help="list the keys --set takes and exit")
    p.add_argument("--tensorboard", choices=("auto", "on", "off"), default="auto",
                   help="TensorBoard event files in OUT/tb (auto: when tensorboard is installed)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="run the encoder and decoder under bf16 autocast (outputs in float32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the encoder and decoder (not the model/guide functions)")
    p.add_argument("--no-progress", action="store_true")
    return p


#: (option, smallest allowed value) for the integer options (None: not given).
_MINIMUM = {"steps": 1, "pretrain_steps": 0, "batch_size": 1, "global_batch_size": 1,
            "seq_len": 2, "num_modules": 1,
            "num_slots": 1, "eval_every": 0, "seed": 0, "checkpoint_every": 0}


def check_args(args, parser=None) -> None:
    """Reject impossible arguments before anything is written (``parser.error``: exit 2)."""
    parser = parser or build_parser()
    for name, minimum in _MINIMUM.items():
        value = getattr(args, name)
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be an integer >= {minimum}, "
                         f"got {value}")
    if args.device is not None:
        try:
            device = torch.device(args.device)
        except (RuntimeError, ValueError) as e:
            parser.error(f"bad --device {args.device!r}: {e}")
        if device.type == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda was asked for but CUDA is not available")
    if args.global_batch_size is not None:
        if args.batch_size is not None:
            parser.error("give --batch-size (per process) or --global-batch-size, not both")
        world = _world_size(parser)
        if args.global_batch_size < world or args.global_batch_size % world:
            parser.error(f"--global-batch-size {args.global_batch_size} cannot be split evenly "
                         f"over {world} processes (it must be a multiple of the world size, "
                         f"at least {world})")
    if not args.out:
        parser.error("--out must name a folder")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        parser.error(f"--out {args.out!r} exists and is not a folder")
    checkpoint = os.path.join(args.out, "checkpoint.pt")
    if args.resume and not os.path.isfile(checkpoint):
        parser.error(f"--resume: there is no checkpoint at {checkpoint!r}")
    if not args.resume and os.path.exists(checkpoint):
        parser.error(f"--out {args.out!r} already holds a run ({checkpoint}); pass --resume to "
                     "continue it, or choose another --out")
    try:
        config = build_config(args)
        _check_shards(config, _world_size(parser), args.steps)
    except (DatasetJSONError, FileNotFoundError) as e:     # the file or folder is named
        parser.error(str(e))
    except (TypeError, ValueError) as e:
        parser.error(f"these options make an invalid configuration: {e}")


def _world_size(parser) -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        parser.error(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer")


def _check_shards(config: VIMConfig, world: int, steps: Optional[int]) -> None:
    """Recorded videos: the shards must hold a global batch and the longest sequence the
    curriculum asks for within the run's ``steps`` (else training would stop there)."""
    if config.data.name != "npz":
        return
    from ..data.shards import ShardData
    data = ShardData(config.data.path, config.image_size, holdout=config.eval_sequences,
                     seed=config.seed)
    data.batches_per_epoch(config.batch_size, world)
    total = steps if steps is not None else config.pretrain_steps + config.steps
    if total <= config.pretrain_steps:
        return                                   # pre-training reads single frames
    longest = config.seq_len_at(total - config.pretrain_steps - 1)
    if longest > data.seq_len:
        raise ValueError(f"the curriculum reaches {longest}-frame sequences at step {total}, "
                         f"but the shards of {config.data.path!r} hold {data.seq_len} frames: "
                         f"pass --seq-len {data.seq_len} or --set seq_len_max={data.seq_len}")


def parse_args(argv: Optional[Sequence[str]] = None, parser=None):
    """Parse and check the command line (exit status 2 with a message on bad arguments)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    check_args(args, parser)
    return args


def _data_overrides(args) -> Tuple[List[str], dict]:
    """The ``--set`` items, with ``--data DIR`` as ``data.name=npz data.path=DIR`` before them,
    and the parsed user overrides (ValueError for a conflict)."""
    user = parse_overrides(args.overrides)
    if args.data is None:
        return list(args.overrides), user
    if user.get("data.name", "npz") != "npz":
        raise ValueError(f"--data trains on .npz shards; it cannot go with "
                         f"data.name={user['data.name']} (drop one of them)")
    if "data.path" in user:
        raise ValueError("give the shards' directory once: --data DIR or --set data.path=DIR")
    return ["data.name=npz", f"data.path={args.data}", *args.overrides], user


def _checkpoint_config(args) -> Optional[dict]:
    """The pixel-unit settings of the run in OUT (``--resume``), or None (unreadable: the
    trainer then says why)."""
    try:
        saved = load_checkpoint(os.path.join(args.out, "checkpoint.pt"),
                                map_location="cpu")["config"]
        return {k: getattr(VIMConfig.from_saved(saved), k) for k in SCALE_RULES}
    except Exception:
        return None


def resolve_config(args) -> Tuple[VIMConfig, List[str]]:
    """The run's config and, for npz data, the lines that say which ``image_size`` and
    pixel-unit settings were derived and from what (:func:`pyro_vim.data.scales.
    apply_data_scales`; ``--set`` values win, and a resumed run keeps its checkpoint's)."""
    preset = args.preset or ("paper" if torch.cuda.is_available() else "cpu")
    overrides = {"seed": args.seed}
    for field in ("pretrain_steps", "batch_size", "num_modules", "num_slots", "eval_every"):
        value = getattr(args, field)
        if value is not None:
            overrides[field] = value
    if args.seq_len is not None:
        overrides.update(seq_len_start=args.seq_len, seq_len_max=args.seq_len)
    if args.global_batch_size is not None:
        overrides["batch_size"] = args.global_batch_size // int(os.environ.get("WORLD_SIZE", "1"))
    items, user = _data_overrides(args)
    config = apply_overrides(VIMConfig.preset(preset, **overrides), items)
    if config.data.name != "npz":
        return config, []
    previous = _checkpoint_config(args) if args.resume else None
    scales = {k: previous[k] for k in SCALE_RULES if k in (previous or {})} if previous else None
    return apply_data_scales(config, explicit=user, previous=scales)


def build_config(args) -> VIMConfig:
    """The run's config (see :func:`resolve_config`)."""
    return resolve_config(args)[0]


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


def main(args, parser=None) -> dict:
    """Train as ``args`` say (see the module docstring); returns ``{"step", "checkpoint"}`` and
    the final held-out metrics (printed as one JSON line)."""
    parser = parser or build_parser()
    check_args(args, parser)
    config, lines = resolve_config(args)
    if lines and _is_main_rank():
        print("\n".join(lines), flush=True)
    try:
        trainer = Trainer(config, out_dir=args.out, device=args.device, resume=args.resume,
                          checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                          skip_nonfinite=args.skip_nonfinite,
                          tensorboard={"auto": None, "on": True, "off": False}[args.tensorboard],
                          precision=args.precision, compile=args.compile)
    except (FileNotFoundError, TypeError, ValueError, RunDirBusy,
            DistributedSetupError) as e:   # e.g. another config, no rendezvous
        parser.error(str(e))
    main_rank = trainer.dist.is_main
    if main_rank and trainer.dist.enabled:
        print(f"data-parallel: {trainer.dist.world_size} processes x {config.batch_size} videos "
              f"= global batch {trainer.dist.world_size * config.batch_size}", flush=True)
    steps = args.steps if args.steps is not None else config.pretrain_steps + config.steps
    if steps < trainer.step:
        parser.error(f"--steps {steps} is below the checkpoint's step {trainer.step}")
    try:
        trainer.run(steps)
    except RunDirBusy as e:       # another live process trains into OUT
        parser.error(str(e))
    finally:
        shutdown()                 # no collectives after training (rank 0 evaluates alone)
    result = {"step": trainer.step, "checkpoint": trainer.checkpoint_path}
    if not main_rank:              # rank 0 alone reports
        return result
    if trainer.step > config.pretrain_steps:
        result.update(trainer.evaluate())
    print(json.dumps(result))
    return result


def cli(argv: Optional[Sequence[str]] = None, parser=None) -> int:
    """Parse, check and train; the exit status: 0 done, 1 stopped by a non-finite loss or a
    failed checkpoint write (the last good checkpoint is kept); bad arguments exit 2."""
    parser = parser or build_parser()
    args = parse_args(argv, parser)
    try:
        main(args, parser)
    except (NonFiniteError, CheckpointWriteError) as e:   # the last good checkpoint is kept
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
