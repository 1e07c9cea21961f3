"""Name -> class tables of the swappable parts an experiment config names.

``VIMConfig.model`` picks a model family from :data:`MODELS`, ``VIMConfig.prior`` a
module-selection prior from :data:`PRIORS`, ``VIMConfig.guide`` a variational guide from
:data:`GUIDES`, ``VIMConfig.tracking`` the guide's tracking policy from :data:`TRACKING` and
``VIMConfig.merge`` the trainer's module-merge step from :data:`MERGES`.  The library's own
parts register themselves when :mod:`pyro_vim` is imported; a researcher's new part is
registered the same way, and then a config (and a checkpoint) can name it::

    from pyro_vim.registry import register_prior

    @register_prior("my_prior")
    class MyPrior(PyroModule):
        @classmethod
        def from_config(cls, config): ...
        def logits(self, pos, feat, cand_pos, cand_feat): ...

Every registered class has a ``from_config(config)`` constructor.  This module imports nothing
else from the package, so that the config can check names against it.
"""
from typing import Callable, Dict, Type

MODELS: Dict[str, Type] = {}
PRIORS: Dict[str, Type] = {}
GUIDES: Dict[str, Type] = {}
TRACKING: Dict[str, Type] = {}
MERGES: Dict[str, Type] = {}

_TABLES = {"model": MODELS, "prior": PRIORS, "guide": GUIDES, "tracking": TRACKING,
           "merge": MERGES}


def _register(kind: str, name: str) -> Callable[[Type], Type]:
    table = _TABLES[kind]
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} name must be a non-empty string, got {name!r}")

    def decorator(cls: Type) -> Type:
        if name in table and table[name] is not cls:
            raise ValueError(f"the {kind} name {name!r} is already taken by "
                             f"{table[name].__qualname__}")
        if not callable(getattr(cls, "from_config", None)):
            raise TypeError(f"{cls.__qualname__} needs a from_config(config) classmethod to be "
                            f"registered as a {kind}")
        table[name] = cls
        return cls
    return decorator


def register_model(name: str):
    """Class decorator: make a model family available as ``VIMConfig(model=name)``."""
    return _register("model", name)


def register_prior(name: str):
    """Class decorator: make a module-selection prior available as ``VIMConfig(prior=name)``."""
    return _register("prior", name)


def register_guide(name: str):
    """Class decorator: make a guide available as ``VIMConfig(guide=name)``."""
    return _register("guide", name)


def register_tracking(name: str):
    """Class decorator: make a tracking policy of the guide's perception available as
    ``VIMConfig(tracking=name)``."""
    return _register("tracking", name)


def register_merge(name: str):
    """Class decorator: make a module-merge step of the trainer available as
    ``VIMConfig(merge=name)``."""
    return _register("merge", name)


def name_of(kind: str, obj) -> str:
    """The registered name of ``obj``'s exact class, or ValueError naming the class."""
    for name, cls in _TABLES[kind].items():
        if type(obj) is cls:
            return name
    raise ValueError(
        f"{type(obj).__qualname__} is not a registered {kind}, so a checkpoint could not restore "
        f"it; register it with pyro_vim.registry.register_{kind}(NAME) (registered: "
        f"{sorted(_TABLES[kind])})")


def lookup(kind: str, name: str) -> Type:
    table = _TABLES[kind]
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; registered {kind}s: {sorted(table)}")
    return table[name]
