"""How a module choice r_t mixes the candidates s_m = f_m(h_{t-1}) into f(h, r).

The paper samples r relaxed (Gumbel-softmax, temperature 1) in training, so that the ELBO is
differentiable, and uses "the hard version during testing so that the variables are categorical"
(Sec. 5.1): in eval mode the chosen module alone moves the slot (``test_choices="hard"``). A relaxed
sample of a confident posterior is nearly one-hot, but one of the near-uniform prior at temperature
1 is not: mixing by it moved sampled futures by about half a step in a blend of directions
(BENCHMARKS.md, Table 1 section: prior samples re-scored with hard choices).
``test_choices="relaxed"`` mixes as in training. ``straight_through`` (an ablation, off by default)
mixes by the hard choice in training too, with the relaxed sample's gradient.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


class ChoiceMixing:
    """The weights by which a choice r (..., M) mixes the M candidates."""

    def __init__(self, test_choices: str = "hard", straight_through: bool = False):
        if test_choices not in ("hard", "relaxed"):
            raise ValueError(f"test_choices must be 'hard' or 'relaxed', got {test_choices!r}")
        self.test_choices, self.straight_through = test_choices, bool(straight_through)

    @classmethod
    def from_config(cls, config) -> "ChoiceMixing":
        return cls(config.test_choices, config.straight_through)

    def hard(self, training: bool) -> bool:
        """Whether the hard choice (the argmax of r, an exact categorical draw) mixes."""
        return self.straight_through or (not training and self.test_choices == "hard")

    def weights(self, r: torch.Tensor, training: bool) -> torch.Tensor:
        """r itself, or the hard one-hot argmax forward with r's gradient backward."""
        if not self.hard(training):
            return r
        hard = F.one_hot(r.argmax(-1), r.shape[-1]).to(r.dtype)
        return hard + r - r.detach()
