"""Loading a shipped checkpoint by name (:func:`load`, also ``pyro_vim.pretrained(name)``)."""
from __future__ import annotations

import os
from typing import List, Optional

from .manifest import FOLDER, read_manifest, sha256


def names(folder: Optional[str] = None) -> List[str]:
    """The names of the shipped checkpoints, sorted."""
    return sorted(read_manifest(folder))


def load(name: str, map_location="cpu", folder: Optional[str] = None):
    """The shipped model ``name`` (e.g. ``"random_walk"``), in eval mode (hard test-time module
    choices), with its config as ``model.config``: ready for ``model.infer(frames)``,
    :func:`pyro_vim.infer.predict` and the evaluation (``pyro_vim.evaluate``).

    The file is checked against the manifest's sha256 first.  Raises ``ValueError`` for an
    unknown name (listing the shipped ones) or a file that does not match its manifest."""
    from ..models import load_model
    folder = folder or FOLDER
    manifest = read_manifest(folder)
    if not isinstance(name, str) or name not in manifest:
        shipped = ", ".join(sorted(manifest)) or "none"
        raise ValueError(f"no pretrained model {name!r}; shipped: {shipped} "
                         "(pyro_vim.pretrained.names())")
    entry = manifest[name]
    path = os.path.join(folder, entry["file"])
    if not os.path.isfile(path):
        raise ValueError(f"pretrained model {name!r}: its file {path} is missing; reinstall "
                         "pyro-vim")
    found = sha256(path)
    if found != entry["sha256"]:
        raise ValueError(f"pretrained model {name!r}: {path} does not match its manifest "
                         f"(sha256 {found[:12]}..., expected {entry['sha256'][:12]}...): it "
                         "was changed or truncated; reinstall pyro-vim")
    model = load_model(path, map_location=map_location)
    model.eval()
    return model
