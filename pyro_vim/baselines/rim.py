"""RIM (Recurrent Independent Mechanisms, Goyal et al., 2019) as a teacher-forced baseline.

RIM is SCOFF (:mod:`pyro_vim.baselines.scoff`) without a choice of schema: the same input
attention (``extra["input_attention"]``: "competitive", units and a null competing for each
pixel as in slot attention, the default until measured otherwise; "null_row", RIM's own: the
frame encoded into one input vector beside a null row, as in Goyal et al.'s code; "pixel_rows",
before 2026-12-07), top-k activation (``extra["top_k"]``, default every unit; inactive units keep
their state exactly), communication between the active units, encoder, per-unit broadcast
decoder (``config.decode_window`` as for VIM), the same perception pre-training as VIM and
frame 0 out of the loss.  Its K units (``config.num_slots``) are updated by

* ``config.extra["rim_schemata"] = "per_unit"`` (default): one GRU per unit with its own
  parameters, the independent mechanisms of Goyal et al. (2019);
* ``"single"``: one GRU shared by every unit, the VIM paper's reading of RIM as "SCOFF with
  M = 1 schema" (Appendix B).

``config.num_modules`` is not used by RIM.
"""
from __future__ import annotations

from ..registry import register_model
from .scoff import SCOFF, baseline_settings

__all__ = ["RIM"]


@register_model("rim")
class RIM(SCOFF):
    """Recurrent Independent Mechanisms: SCOFF with no schema choice (see the module
    docstring)."""

    family = "rim"

    def schemata_kind(self) -> str:
        return baseline_settings(self.config)["rim_schemata"]
