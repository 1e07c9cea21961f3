"""Shared pytest set-up: Pyro validation on, one fixed seed per test, one torch thread."""
import os

import pyro
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_validate():
    pyro.enable_validation(True)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


# TensorBoard event files only where a test asks for them (tests/test_tensorboard.py)
os.environ["PYRO_VIM_TENSORBOARD"] = "0"

# One intra-op thread: the test models are tiny (more threads only add overhead), and exact
# float comparisons (resume tests) need one fixed thread count.
torch.set_num_threads(int(os.environ.get("PYRO_VIM_TEST_THREADS", "1")))
