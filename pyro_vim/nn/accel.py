"""Speed options for the Pyro-free networks: bf16 autocast and ``torch.compile``.

``accelerate(module, precision="bf16", compile=True)`` changes how ``module`` runs, never what
it holds: its parameters, buffers and ``state_dict`` keys stay as they are (a checkpoint written
with or without acceleration loads either way), and its floating outputs come back in float32,
so the Pyro model's distributions and log-densities are computed in full precision.  Only the
Pyro-free networks are meant to be accelerated (the model and guide functions are not compiled:
Pyro's tracing is Python).

Which helps is measured, not assumed: ``benchmarks/gpu.py`` times each combination.
"""
import functools
from typing import Iterable

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


def _to_float32(out):
    if isinstance(out, torch.Tensor):
        return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
    if isinstance(out, tuple) and hasattr(out, "_fields"):          # a NamedTuple
        return type(out)(*(_to_float32(o) for o in out))
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float32(o) for o in out)
    return out


def _autocast_forward(forward, *args, **kwargs):
    first = next((a for a in args if isinstance(a, torch.Tensor)), None)
    device_type = first.device.type if first is not None else "cpu"
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
        out = forward(*args, **kwargs)
    return _to_float32(out)


def accelerate(module: nn.Module, precision: str = "fp32", compile: bool = False) -> nn.Module:
    """Run ``module`` under bf16 autocast (``precision="bf16"``) and/or compiled; in place.

    Returns the module.  Raises ``ValueError`` for an unknown precision and ``RuntimeError``
    where this torch cannot compile a module in place (``nn.Module.compile``, torch >= 2.2).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"accelerate expects an nn.Module, got {type(module).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if getattr(module, "_pyro_vim_accel", None) is not None:
        raise ValueError(f"{type(module).__name__} is already accelerated "
                         f"({module._pyro_vim_accel}); build a fresh module to change that")
    if precision == "bf16":
        module.forward = functools.partial(_autocast_forward, module.forward)
    if compile:
        if not hasattr(module, "compile"):
            raise RuntimeError(f"torch {torch.__version__} has no nn.Module.compile; "
                               "compiling needs torch >= 2.2")
        module.compile()
    module._pyro_vim_accel = (precision, bool(compile))
    return module


#: the Pyro-free networks of a VIM that ``accelerate_networks`` speeds up by default
NETWORKS = ("encoder", "decoder")


def accelerate_networks(model: nn.Module, precision: str = "fp32", compile: bool = False,
                        names: Iterable[str] = NETWORKS) -> nn.Module:
    """Accelerate the named Pyro-free sub-networks of ``model`` (those it has); in place.

    With ``precision="fp32"`` and ``compile=False`` nothing changes."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" and not compile:
        return model
    found = [n for n in names if isinstance(getattr(model, n, None), nn.Module)]
    if not found:
        raise ValueError(f"{type(model).__name__} has none of the networks {tuple(names)} "
                         "to accelerate")
    for name in found:
        accelerate(getattr(model, name), precision, compile)
    return model
