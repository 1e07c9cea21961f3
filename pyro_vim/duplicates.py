"""Duplicate transition modules: find them, and free the copy: the trainer's merge step
(``VIMConfig.merge = "duplicates"``, every ``merge_every`` dynamics steps; ``"none"``: the
paper's training, without it).

With more modules than rules, a spare module can learn a copy of a rule's module.  The ELBO
cannot tell: two modules that predict the same next state explain the frames equally well, and
with the analytic categorical module KL, a choice split between them costs nothing when the
learned prior splits it the same way (``benchmarks/duplicate_modules.py`` measures this: flat
to 0.002 nats; Trace_ELBO's Monte Carlo estimate on relaxed samples, the paper's, does penalise
the split, but it also shrinks the modules).  Which of them a slot picks is then noise, and a
rule shows up as two modules.

The remedy here works on the training dynamics, like split-and-merge EM for mixtures (Ueda et
al., 2000) or restarting collapsed codes in vector quantisation: every ``merge_every``
dynamics steps, :func:`find_duplicates` applies every module to the object slots the guide
tracks in the current training batch; module b duplicates module a when, on the slots that pick
either of them, their predicted positions differ by less than the guide's own distance scale
(``selection_scale`` pixels: closer than that, the selection posterior cannot tell them apart)
and a moves the slots by more than that scale (an identity-like module is no rule yet).
:func:`reset_modules` turns the less used copy back into the identity (zero last layer: it
predicts h itself) and clears its optimiser state.  An identity candidate sits a whole move away
from every observed next state, so the guide gives it almost no weight; a new rule, if the data
has one, can still claim it.  Nothing changes while the modules are distinct.
"""
from typing import Dict, List, Sequence, Tuple

import torch

from .distributed import Context, all_reduce_sum
from .registry import register_merge

__all__ = ["find_duplicates", "reset_modules", "merge_duplicates", "DuplicateMerge", "NoMerge"]


@torch.no_grad()
def find_duplicates(vim, frames: torch.Tensor, max_videos: int = 8) -> List[Tuple[int, int]]:
    """Pairs ``(copy, kept)`` of modules that duplicate each other on ``frames`` (N, T, 3, S, S).

    The guide's hard choices and mean updates (``vim.infer``) give the object slots (every slot
    but the background slot 0) at frames 0..T-2 and the module each picks; every module is
    applied to those states.  For modules a, b (a used at least as often as b): with P the slots
    picking a or b, b is a copy of a when the mean distance over P between their predicted
    positions is below ``selection_scale`` pixels and a's mean translation over P exceeds it.
    A module is reported as a copy at most once, never of a module that is itself a copy."""
    c = vim.config
    was_training = vim.training
    vim.eval()
    try:
        out = vim.infer(frames[:max_videos], iterations=1, stay=False, decode=False)
    finally:
        vim.train(was_training)
    slots = out["slots"][:, :-1, 1:]                        # (N, T-1, K-1, S) object slots
    picks = out["selections"][:, :, 1:].reshape(-1)         # (P,)
    states = slots.reshape(-1, slots.shape[-1])
    from .infer import _normalised_velocities
    vel = out.get("velocities")                             # with interaction.velocity
    vel = None if vel is None else vel[:, :-1, 1:]
    dpos = vim.transition(states[:, :2], states[:, 2:],
                          *_normalised_velocities(vim, vel, states))[0]   # (P, M, 2) normalised
    dpos = dpos * ((c.image_size - 1) / 2.0)                # pixels
    m = dpos.shape[1]
    usage = torch.bincount(picks, minlength=m)
    order = sorted(range(m), key=lambda j: -int(usage[j]))
    scale = c.selection_scale_resolved
    pairs, copies = [], set()
    for i, a in enumerate(order):
        if a in copies or usage[a] == 0:
            continue
        for b in order[i + 1:]:
            if b in copies:
                continue
            on = (picks == a) | (picks == b)
            moved = dpos[on, a].norm(dim=-1).mean()
            apart = (dpos[on, a] - dpos[on, b]).norm(dim=-1).mean()
            if float(moved) > scale and float(apart) < scale:
                pairs.append((b, a))
                copies.add(b)
    return pairs


@torch.no_grad()
def reset_modules(vim, modules: Sequence[int], optimizer=None) -> None:
    """Make each module in ``modules`` the identity (its last layer zero) and clear the Adam
    moments of its slices, so that stale momentum does not pull it back."""
    if not modules:
        return
    layer = vim.transition.l3
    idx = torch.as_tensor(list(modules), dtype=torch.long, device=layer.weight.device)
    layer.weight[idx] = 0.0
    layer.bias[idx] = 0.0
    if optimizer is None:
        return
    for p in (layer.weight, layer.bias):
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            if key in state:
                state[key][idx] = 0.0


def merge_duplicates(vim, frames: torch.Tensor, optimizer=None,
                     ctx: Context = None) -> Dict[int, int]:
    """Find duplicates on ``frames`` and reset the copies; returns {copy: kept}.  Under
    torch.distributed every rank resets the modules that any rank found copied (the same
    deterministic reset, so the ranks' parameters stay equal)."""
    pairs = dict(find_duplicates(vim, frames))
    m = vim.config.num_modules
    if ctx is not None and ctx.enabled:
        flags = all_reduce_sum([1.0 if j in pairs else 0.0 for j in range(m)], ctx,
                               device=frames.device)
        for j in range(m):
            if flags[j] > 0 and j not in pairs:
                pairs[j] = -1                       # found by another rank
    reset_modules(vim, sorted(pairs), optimizer)
    return pairs


@register_merge("duplicates")
class DuplicateMerge:
    """The trainer's merge step: every ``every`` dynamics steps from ``start`` on,
    :func:`merge_duplicates` on the training batch."""

    def __init__(self, every: int = 25, start: int = 0):
        self.every, self.start = every, start

    @classmethod
    def from_config(cls, config) -> "DuplicateMerge":
        return cls(config.merge_every, config.warmup_steps)

    def due(self, dyn_step: int) -> bool:
        """Whether dynamics step ``dyn_step`` (counted after pre-training) runs the check."""
        return bool(self.every) and dyn_step >= self.start and dyn_step % self.every == 0

    def __call__(self, vim, frames: torch.Tensor, optimizer=None,
                 ctx: Context = None) -> Dict[int, int]:
        return merge_duplicates(vim, frames, optimizer, ctx)


@register_merge("none")
class NoMerge:
    """No merge step (the paper's training)."""

    @classmethod
    def from_config(cls, config) -> "NoMerge":
        return cls()

    def due(self, dyn_step: int) -> bool:
        return False

    def __call__(self, vim, frames, optimizer=None, ctx=None) -> Dict[int, int]:
        return {}
