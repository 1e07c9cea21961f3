"""``key=value`` overrides of a :class:`~pyro_vim.config.VIMConfig` (Hydra-like, no dependency).

``apply_overrides(config, ["num_slots=5", "data.step=4", "prior=uniform"])`` returns a new,
validated config.  Keys are field names, dotted for the ``data`` section; a section's field may
be written with its section too (``architecture.num_slots=5``).  Values are parsed by the
field's type:

* int / float: ``7``, ``1e-3``; bool: ``true``/``false`` (also ``yes``/``no``, ``1``/``0``);
* str: as written; ``none``/``null`` for an optional field;
* lists (``data.colors``): JSON (``[[1,0,0],[0,1,0]]``) or ``1,0,0;0,1,0`` (rows split by ``;``);
  ``data.background`` takes a word (``texture``, ``black``) or an RGB list (``0.25,0.25,0.25``);
* dicts (``extra``): JSON.

An unknown key or a value of the wrong type raises ``ValueError`` naming the key (with the closest
known keys), and the config's own validation names a value out of range.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from typing import Any, Dict, Iterable, List, Tuple

from .config import FLAT_NAMES, SECTIONS, DataConfig, VIMConfig

__all__ = ["parse_override", "parse_overrides", "apply_overrides", "config_keys"]

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_NONE = {"none", "null"}


def _fields(cls) -> Dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def config_keys() -> List[str]:
    """Every settable key: the top-level fields, every section field under its own name, and
    ``data.<field>`` (a section field may also be written ``<section>.<field>``)."""
    keys = [k for k in _fields(VIMConfig) if k not in SECTIONS and k not in ("data", "version")]
    keys += [k for section in SECTIONS.values() for k in _fields(section)]
    return keys + [f"data.{k}" for k in _fields(DataConfig)]


def _type_of(key: str):
    section, _, name = key.rpartition(".")
    if section == "data":
        fields = _fields(DataConfig)
    elif section in SECTIONS:
        fields = _fields(SECTIONS[section])
    elif not section and name in FLAT_NAMES:
        fields = _fields(SECTIONS[FLAT_NAMES[name]])
    elif not section:
        fields = {k: v for k, v in _fields(VIMConfig).items()
                  if k not in SECTIONS and k not in ("data", "version")}
    else:
        fields = {}
    if name not in fields:
        close = difflib.get_close_matches(key, config_keys(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown config key {key!r}{hint} (python -m pyro_vim.run --keys "
                         "lists them)")
    return fields[name]


def _convert(key: str, text: str, tp) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union:                       # Optional[X], Optional[Union[str, X]]
        if text.strip().lower() in _NONE:
            return None
        options = [a for a in args if a is not type(None)]
        if str in options and len(options) > 1:      # a word, or the other (list) type
            stripped = text.strip()
            if not (stripped[:1] in "[{" or any(ch.isdigit() for ch in stripped[:1])):
                return text
            options.remove(str)
        tp = options[0]
        origin, args = typing.get_origin(tp), typing.get_args(tp)

    def bad(expected: str):
        return ValueError(f"bad value for {key}: expected {expected}, got {text!r}")

    if tp is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad("a bool (true/false)")
    if tp is int:
        try:
            return int(text.strip())
        except ValueError:
            raise bad("an int") from None
    if tp is float:
        try:
            return float(text.strip())
        except ValueError:
            raise bad("a number") from None
    if tp is str:
        return text
    if origin in (list, List, tuple, Tuple) or origin is dict:
        stripped = text.strip()
        if stripped[:1] in "[{":
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as e:
                raise bad(f"JSON ({e.msg})") from None
        elif origin is dict:
            raise bad("a JSON object")
        else:
            try:
                rows = [[float(v) for v in row.split(",")] for row in stripped.split(";")]
            except ValueError:
                raise bad("numbers separated by ',' (rows by ';') or JSON") from None
            inner = typing.get_args(tp)[0] if typing.get_args(tp) else float
            value = rows if typing.get_origin(inner) in (list, List) else rows[0]
        if origin is dict and not isinstance(value, dict):
            raise bad("a JSON object")
        if origin is not dict and not isinstance(value, list):
            raise bad("a list")
        return value
    raise ValueError(f"config key {key!r} cannot be set from the command line")


def parse_override(item: str) -> Tuple[str, Any]:
    """``"data.step=4"`` -> ``("data.step", 4)``, typed by the config field."""
    if not isinstance(item, str) or "=" not in item:
        raise ValueError(f"an override must look like key=value, got {item!r}")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"an override must look like key=value, got {item!r}")
    return key, _convert(key, text, _type_of(key))


def parse_overrides(items: Iterable[str]) -> Dict[str, Any]:
    """Several ``key=value`` strings -> ``{key: typed value}`` (a later key wins)."""
    out: Dict[str, Any] = {}
    for item in items:
        key, value = parse_override(item)
        out[key] = value
    return out


def apply_overrides(config: VIMConfig, overrides) -> VIMConfig:
    """A validated copy of ``config`` with the overrides: a list of ``key=value`` strings or a
    dict ``{key: value}`` (dotted ``data.`` keys)."""
    if isinstance(overrides, dict):
        for key in overrides:
            _type_of(key)
        parsed = dict(overrides)
    else:
        parsed = parse_overrides(overrides)
    try:
        return config.replace(**parsed)
    except TypeError as e:      # a value of the wrong type reached the dataclass
        raise ValueError(f"bad override: {e}") from None
