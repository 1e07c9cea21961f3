"""``key=value`` overrides: typed by the config field, errors name the key."""
import pytest

from pyro_vim.config import VIMConfig
from pyro_vim.overrides import apply_overrides, config_keys, parse_override


def test_values_are_typed_by_the_field():
    c = apply_overrides(VIMConfig(), ["num_slots=5", "lr=1e-4", "freeze_perception=true",
                                      "prior=uniform", "data.step=4", "data.num_objects=4",
                                      "data.colors=1,0,0;0,1,0;0,0,1;1,1,0",
                                      'extra={"note": "x"}'])
    assert (c.num_slots, c.lr, c.freeze_perception, c.prior) == (5, 1e-4, True, "uniform")
    assert (c.data.step, c.data.num_objects) == (4, 4)
    assert c.data.colors[3] == [1.0, 1.0, 0.0] and c.extra == {"note": "x"}
    assert apply_overrides(c, ["data.colors=none"]).data.colors is None
    assert apply_overrides(c, ["data.colors=[[1, 0, 0]]", "data.num_objects=1"]).data.colors == [
        [1.0, 0.0, 0.0]]
    assert parse_override("mask_extent=0") == ("mask_extent", 0.0)
    assert apply_overrides(VIMConfig(), {"data.step": 2, "num_modules": 5}).data.step == 2


@pytest.mark.parametrize("item, match", [
    ("num_slotz=5", "unknown config key 'num_slotz'; did you mean num_slots"),
    ("data.gravity=3", "unknown config key 'data.gravity'"),
    ("data=3", "unknown config key 'data'"),
    ("num_slots=five", "bad value for num_slots: expected an int, got 'five'"),
    ("lr=fast", "bad value for lr: expected a number"),
    ("freeze_perception=maybe", "bad value for freeze_perception: expected a bool"),
    ("data.colors=red", "bad value for data.colors"),
    ("extra=[1]", "bad value for extra: expected a JSON object"),
    ("num_slots", "key=value"),
    ("=3", "key=value"),
    ("num_slots=0", "num_slots must be a positive int"),
    ("prior=gaussian", "VIMConfig.prior must be one of"),
])
def test_bad_overrides_name_the_key(item, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(VIMConfig(), [item])


def test_every_field_is_a_key():
    keys = config_keys()
    assert "num_slots" in keys and "data.step" in keys and "data" not in keys
    for key in keys:            # every key parses its own current value back
        section, _, name = key.rpartition(".")
        value = getattr(VIMConfig().data if section else VIMConfig(), name)
        text = "none" if value is None else (
            "true" if value is True else "false" if value is False else
            "{}" if isinstance(value, dict) else str(value))
        assert apply_overrides(VIMConfig(), [f"{key}={text}"]) == VIMConfig()
