"""Evaluation of a trained VIM (Sec. 5.1): rule identification, tracking, reconstruction."""
from __future__ import annotations

from typing import Dict

import torch

from . import metrics
from .data import VideoBatch


@torch.no_grad()
def identification(vim, batch: VideoBatch, chunk: int = 64) -> Dict:
    """Run ``vim.infer`` on a ground-truth batch and score it with ``metrics.identification_report``.
    """
    if not isinstance(batch, VideoBatch):
        raise TypeError(f"identification expects a VideoBatch, got {type(batch).__name__}")
    device = next(vim.parameters()).device
    masks, selections = [], []
    for i in range(0, len(batch), chunk):
        frames = torch.from_numpy(batch.frames[i:i + chunk]).to(device)
        out = vim.infer(frames)
        masks.append(out["masks"].cpu())
        selections.append(out["selections"].cpu())
    return metrics.identification_report(batch.moves, batch.positions, torch.cat(masks),
                                         torch.cat(selections), vim.config.num_modules)
