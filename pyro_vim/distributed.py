"""Data-parallel training over processes and machines with ``torch.distributed``.

Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``)::

    torchrun --nproc_per_node=2 examples/train_random_walk.py --out runs/ddp
    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 examples/train_random_walk.py --out runs/ddp   # each machine

Every rank builds the same model (rank 0's parameters are broadcast), draws its own slice of the
global batch (``batch_size`` videos per rank, disjoint across ranks) and its own sampling noise,
and the gradients of the summed ELBO are all-reduced (summed) before the update, so N ranks with
``batch_size`` B take the step one process takes with batch N·B.  Gradient clipping, the
non-finite check and the logged ELBO terms use the global batch.  Rank 0 alone writes the log,
the checkpoints (with every rank's RNG state, so a resume is exact) and the evaluations.  The
backend is ``nccl`` on CUDA and ``gloo`` on CPU.  (``nn.DataParallel`` is not used: it breaks
under Pyro plates.)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import List, Optional

import torch
import torch.distributed as dist

__all__ = ["Context", "SINGLE", "from_env", "barrier", "all_reduce_grads", "all_reduce_sum",
           "gather_objects", "shutdown", "exit_process", "DistributedSetupError"]


class DistributedSetupError(RuntimeError):
    """A distributed launch that cannot work (missing rendezvous, bad sizes)."""


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Context()


def _env_int(name: str) -> Optional[int]:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise DistributedSetupError(f"environment variable {name}={value!r} is not an integer")


def from_env(device: Optional[torch.device] = None, timeout_s: float = 300.0) -> Context:
    """The process's place in a ``torchrun`` launch (initialising the process group), or
    :data:`SINGLE` when ``WORLD_SIZE`` is unset or 1."""
    world = _env_int("WORLD_SIZE")
    if world is None or world == 1:
        return SINGLE
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if world < 1 or rank is None or not 0 <= rank < world:
        raise DistributedSetupError(f"WORLD_SIZE={world} needs RANK in [0, {world}) (got "
                                    f"{rank}); launch with torchrun")
    if dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), local or 0)
    missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
    if missing:
        raise DistributedSetupError(
            f"WORLD_SIZE={world} but no rendezvous: {', '.join(missing)} not set. Launch with "
            "torchrun (torchrun --nproc_per_node=N ...; on several machines add --nnodes, "
            "--node_rank and --rdzv_endpoint=HOST:PORT)")
    cuda = device is not None and torch.device(device).type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local or 0)
    try:
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=timedelta(seconds=timeout_s))
    except Exception as e:      # rendezvous refused, unreachable master, ...
        raise DistributedSetupError(
            f"could not join the process group (rank {rank} of {world}, master "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}, backend {backend}): "
            f"{e}") from None
    return Context(rank, world, local or 0)


def shutdown() -> None:
    """Leave the process group (nothing when none was joined).

    Each rank calls it once it takes part in no more collectives: a process that exits with a
    live gloo group can abort in the group's destructor ("terminate called without an active
    exception"), which torchrun reports as a failed launch."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def exit_process(code: int = 0) -> None:
    """End a script's process; under ``torchrun`` (WORLD_SIZE > 1) every rank ends with
    ``os._exit`` after the interpreter's ``atexit`` handlers have run.

    Leaving the process group is not enough: measured on the development machine (2 CPU
    processes, gloo), about one launch in four ended with rank 1 aborting after the interpreter
    had finalised ("terminate called without an active exception", no Python frame), in a C++
    destructor of torch.distributed's threads, and a CI run on 2026-12-03 saw rank 0 abort the
    same way.  ``os._exit`` skips those destructors.  What a normal exit would still do from
    Python is done first: the ``atexit`` handlers (logging, TensorBoard writers, ...) and the
    flush of stdout / stderr.  Rank 0's files are complete by then (checkpoints are written
    atomically).  Single processes exit normally."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK") is not None:
        import atexit
        import sys
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise SystemExit(code)


def barrier(ctx: Context) -> None:
    """Wait until every rank gets here (nothing on a single process)."""
    if ctx.enabled:
        dist.barrier()


def broadcast_parameters(module: torch.nn.Module, ctx: Context) -> None:
    """Make every rank's parameters and buffers rank 0's."""
    if not ctx.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_reduce_grads(parameters: List[torch.Tensor], ctx: Context) -> None:
    """Sum the gradients over ranks, in one flattened buffer (missing gradients count as 0)."""
    if not ctx.enabled:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_reduce_sum(values: List[float], ctx: Context, device=None) -> List[float]:
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather_objects(obj, ctx: Context) -> list:
    """Every rank's ``obj`` (a list indexed by rank); ``[obj]`` without distribution."""
    if not ctx.enabled:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out
