"""Train VIM on the Random Walk dataset (paper Sec. 5.1).

    python examples/train_random_walk.py                      # cpu preset (default without CUDA)
    python examples/train_random_walk.py --preset paper --device cuda
    python examples/train_random_walk.py --out runs/rw --resume
    python examples/train_random_walk.py --set prior=uniform data.step=4 data.num_objects=4 \
        num_slots=5                                         # any config key (see --keys)
    torchrun --nproc_per_node=2 examples/train_random_walk.py --out runs/ddp   # data-parallel

Writes OUT/checkpoint.pt and OUT/log.jsonl and prints the final rule-module accuracy.  Bad
arguments (a non-positive size, an OUT that already holds a run without --resume, --resume
without a checkpoint, a checkpoint of another config, ...) stop with ``error: ...`` and exit
status 2 before anything is written: OUT is not created and an existing run is left untouched.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyro_vim.checkpoint import CheckpointWriteError  # noqa: E402
from pyro_vim.config import PRESETS, VIMConfig  # noqa: E402
from pyro_vim.distributed import DistributedSetupError, exit_process, shutdown  # noqa: E402
from pyro_vim.nn.accel import PRECISIONS  # noqa: E402
from pyro_vim.overrides import apply_overrides  # noqa: E402
from pyro_vim.rundir import RunDirBusy  # noqa: E402
from pyro_vim.train import NonFiniteError, Trainer  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    p.add_argument("--out", default="runs/random_walk")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--skip-nonfinite", action="store_true",
                   help="skip steps with a non-finite ELBO or gradient instead of stopping")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[],
                   metavar="KEY=VALUE",
                   help="config overrides applied last, e.g. prior=uniform data.step=4 "
                        "(python -m pyro_vim.run --keys lists the keys)")
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
    parser = parser or _parser()
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
        build_config(args)
    except (TypeError, ValueError) as e:
        parser.error(f"these options make an invalid configuration: {e}")


def _world_size(parser) -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        parser.error(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer")


def parse_args(argv=None):
    """Parse and check the command line (exit status 2 with a message on bad arguments)."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_args(args, parser)
    return args


def build_config(args) -> VIMConfig:
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
    return apply_overrides(VIMConfig.preset(preset, **overrides), args.overrides)


def main(args) -> dict:
    check_args(args)
    config = build_config(args)
    try:
        trainer = Trainer(config, out_dir=args.out, device=args.device, resume=args.resume,
                          checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                          skip_nonfinite=args.skip_nonfinite,
                          tensorboard={"auto": None, "on": True, "off": False}[args.tensorboard],
                          precision=args.precision, compile=args.compile)
    except (FileNotFoundError, TypeError, ValueError, RunDirBusy,
            DistributedSetupError) as e:   # e.g. another config, no rendezvous
        _parser().error(str(e))
    main_rank = trainer.dist.is_main
    if main_rank and trainer.dist.enabled:
        print(f"data-parallel: {trainer.dist.world_size} processes x {config.batch_size} videos "
              f"= global batch {trainer.dist.world_size * config.batch_size}", flush=True)
    steps = args.steps if args.steps is not None else config.pretrain_steps + config.steps
    if steps < trainer.step:
        _parser().error(f"--steps {steps} is below the checkpoint's step {trainer.step}")
    try:
        trainer.run(steps)
    except RunDirBusy as e:       # another live process trains into OUT
        _parser().error(str(e))
    finally:
        shutdown()                 # no collectives after training (rank 0 evaluates alone)
    result = {"step": trainer.step, "checkpoint": trainer.checkpoint_path}
    if not main_rank:              # rank 0 alone reports
        return result
    if trainer.step > config.pretrain_steps:
        result.update(trainer.evaluate())
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main(parse_args())
    except (NonFiniteError, CheckpointWriteError) as e:   # the last good checkpoint is kept
        print(f"error: {e}", file=sys.stderr)
        exit_process(1)
    exit_process(0)
