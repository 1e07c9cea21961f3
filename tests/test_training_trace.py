"""Training numbers do not change: re-train the recorded traces and compare every number.

``tests/fixtures/training_trace*.json`` hold the ``log.jsonl`` records (losses, ELBO terms,
gradient norms, learning rates, KL weights, periodic evaluations, duplicate merges) of short
runs of the real trainer on the tests' tiny config, and ``training_trace*.pt`` the trained
model's ``infer`` outputs on fixed frames; ``tests/fixtures/make_training_trace.py`` wrote them
(and regenerates them when a change of the numbers is intended).
"""
import importlib.util
import json
import math
import os

import pytest
import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
RTOL, ATOL = 1e-5, 1e-6


def _generator():
    path = os.path.join(HERE, "make_training_trace.py")
    spec = importlib.util.spec_from_file_location("make_training_trace", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def _same(got, want, where: str) -> None:
    """Numbers within rtol/atol, everything else (ints, strings, None, keys, lengths) equal."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} vs {sorted(want)}"
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} vs {want!r}"
        for i, (a, b) in enumerate(zip(got, want)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(want, float):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), f"{where}: {got!r}"
        assert math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL), \
            f"{where}: {got!r}, recorded {want!r}"
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r}, recorded {want!r}"


def _relative(got, want) -> float:
    if not isinstance(got, (int, float)) or not isinstance(want, (int, float)):
        return math.inf
    return abs(got - want) / max(abs(want), 1e-30)


@pytest.mark.parametrize("name", list(GEN.TRACES), ids=lambda n: n or "vim1")
def test_training_trace_is_unchanged(name):
    json_path, pt_path = GEN.trace_paths(name)
    with open(json_path) as f:
        recorded = json.load(f)
    expected = torch.load(pt_path, weights_only=True)
    assert recorded["config_overrides"] == json.loads(json.dumps(GEN.TRACES[name][0]))

    trace = GEN.run_trace(name)

    torch.testing.assert_close(trace["frames"], expected["frames"], rtol=0, atol=0)
    records = trace["records"]
    assert len(records) == len(recorded["records"])
    try:
        for got, want in zip(records, recorded["records"]):
            _same(got, want, f"step {want['step']}")
    except AssertionError as e:
        # where the run left the trace: a 1-ulp difference that grows step by step is a change
        # of float rounding (the order of operations); a jump is a change of what is computed
        table = ", ".join(f"{w['step']}: {_relative(g.get('loss'), w['loss']):.1e}"
                          for g, w in zip(records, recorded["records"]))
        raise AssertionError(f"trace {name or 'vim1'!r} changed; loss relative difference "
                             f"per step: {table}\n{e}") from None
    missing = sorted(set(expected["outputs"]) - set(trace["outputs"]))
    assert not missing, f"infer lost outputs {missing}"
    for key, want in expected["outputs"].items():
        torch.testing.assert_close(trace["outputs"][key], want, rtol=RTOL, atol=ATOL,
                                   msg=lambda m, key=key: f"final infer's {key!r} changed: {m}")


def test_traces_exercise_the_trainer():
    """The fixtures cover pre-training, dynamics, evaluations, VIM-2 and a real merge."""
    phases, merged, evals = set(), 0, 0
    for name in GEN.TRACES:
        with open(GEN.trace_paths(name)[0]) as f:
            records = json.load(f)["records"]
        phases |= {r["phase"] for r in records}
        merged += sum("merged" in r for r in records)
        evals += sum("eval" in r for r in records)
    assert phases == {"pretrain", "dynamics"} and merged >= 1 and evals >= 2
