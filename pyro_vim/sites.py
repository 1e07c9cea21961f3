"""Names of VIM's sample sites: the paper's symbols, built and parsed in one place.

* ``z_0`` — initial slot states from the discovery model p(z_0 | c);
* ``r_{t}`` / ``z_{t}`` — module choice and Gaussian update of the transition into frame t
  (t = 1..T-1, and on past the last frame when the model predicts);
* ``r_{t}_{i}`` / ``z_{t}_{i}`` — the same at iteration i = 1..k of a VIM-k transition, when it
  makes k > 1 selection/update iterations between two frames (with k = 1 the names stay
  ``r_{t}`` and ``z_{t}``);
* ``p_{t}`` (``p_{t}_{i}``) — with binary modules (``interaction.num_binary_modules`` > 0,
  :mod:`pyro_vim.interactions`): the partner slot of the module chosen by ``r_{t}``, one of the
  K - 1 other slots or "none" (K categories; "none" last);
* ``x`` — the observed frames.
"""
import re
from typing import NamedTuple, Optional

Z0 = "z_0"
X = "x"

_PATTERN = re.compile(r"^(r|z|p)_(\d+)(?:_(\d+))?$")


def _name(symbol: str, t: int, i: Optional[int]) -> str:
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise ValueError(f"the time index of {symbol}_t must be an int >= 1, got {t!r}")
    if i is None:
        return f"{symbol}_{t}"
    if isinstance(i, bool) or not isinstance(i, int) or i < 1:
        raise ValueError(f"the iteration index of {symbol}_t_i must be an int >= 1, got {i!r}")
    return f"{symbol}_{t}_{i}"


def r_site(t: int, i: Optional[int] = None) -> str:
    """Module-choice site of the transition into frame ``t`` (iteration ``i`` of VIM-k)."""
    return _name("r", t, i)


def z_site(t: int, i: Optional[int] = None) -> str:
    """Gaussian-update site of the transition into frame ``t`` (iteration ``i`` of VIM-k)."""
    return _name("z", t, i)


def p_site(t: int, i: Optional[int] = None) -> str:
    """Partner site of the transition into frame ``t``: which slot the chosen binary module
    pairs each slot with (:mod:`pyro_vim.interactions`)."""
    return _name("p", t, i)


class Site(NamedTuple):
    symbol: str               # "r", "z", "p", "z_0" or "x"
    t: Optional[int] = None   # time index (r, z)
    i: Optional[int] = None   # VIM-k iteration (None when k = 1)


def parse(name: str) -> Optional[Site]:
    """``"r_3"`` -> Site("r", 3, None), ``"z_2_1"`` -> Site("z", 2, 1), ``"p_4"`` ->
    Site("p", 4, None), ``"z_0"`` ->
    Site("z_0"), ``"x"`` -> Site("x"); None for any other name."""
    if name in (Z0, X):
        return Site(name)
    m = _PATTERN.match(name)
    if not m:
        return None
    return Site(m.group(1), int(m.group(2)), int(m.group(3)) if m.group(3) else None)
