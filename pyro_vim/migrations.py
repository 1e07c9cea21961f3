"""Every earlier version of the saved config format, and how it becomes today's.

A saved config (``VIMConfig.to_dict()`` in a checkpoint or a run folder's ``config.json``) carries
its format's ``version``.  :func:`migrate` applies the migrations one version at a time, so a
checkpoint of any earlier commit builds the model it was trained as.

Version 1 is every config written before versions existed (up to 2026-12-04): one flat dict,
in the earliest commits with the data generator's ``dataset``/``num_objects`` at the top instead
of a ``data`` section.  Fields were added to it over time; a version-1 dict that lacks one was
written before it existed, and gets the value that reproduces the model trained then
(:data:`V1_BEFORE_FIELD`), not today's default.

Version 2 (2026-12-07) puts the fields in sections (``architecture``, ``perception``,
``inference``, ``schedule``, ``data``), names the guide's tracking policy
(``perception.tracking``) and the trainer's merge step (``schedule.merge``), and drops
``plan_lookahead`` (an option of the VIM-k guide measured not to help; CHANGELOG.md).
"""
from __future__ import annotations

from typing import Any, Callable, Dict

#: Version-1 fields added after configs were first saved, with the value that reproduces the
#: models of configs saved before them.
V1_BEFORE_FIELD = {"prior_octaves": 0, "r_kl": "sample", "reseed": False,
                   "hold_hidden": False, "merge_every": 0, "reseed_median": False,
                   "iteration_prior": "current"}


def _v1_to_v2(d: Dict[str, Any]) -> Dict[str, Any]:
    from .config import _migrate  # the legacy top-level dataset / num_objects keys
    d = _migrate(dict(d))
    for name, value in V1_BEFORE_FIELD.items():
        d.setdefault(name, value)
    d.pop("plan_lookahead", None)
    hold, reseed = d.get("hold_hidden", True), d.get("reseed", True)
    d["tracking"] = "occlusion" if (hold or reseed) else "paper"
    d["merge"] = "none" if d.get("merge_every", 25) == 0 else "duplicates"
    d["version"] = 2
    return d


#: version -> the function that turns a dict of that version into one of the next version
MIGRATIONS: Dict[int, Callable[[Dict[str, Any]], Dict[str, Any]]] = {1: _v1_to_v2}


def migrate(d: Dict[str, Any]) -> Dict[str, Any]:
    """A dict of any saved version -> a dict of today's version (its fields flat or in
    sections, as :class:`~pyro_vim.config.VIMConfig` accepts them)."""
    from .config import CONFIG_VERSION
    version = d.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not (
            1 <= version <= CONFIG_VERSION):
        raise ValueError(f"unknown config version {version!r}: this pyro-vim reads versions 1 to "
                         f"{CONFIG_VERSION} (a config of a newer pyro-vim needs that version)")
    d = dict(d)
    while d["version"] < CONFIG_VERSION:
        d = MIGRATIONS[d["version"]](d)
    return d
