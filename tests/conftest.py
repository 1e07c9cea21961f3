"""Shared pytest set-up: Pyro validation on, one fixed seed per test, small thread count."""
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


torch.set_num_threads(int(os.environ.get("PYRO_VIM_TEST_THREADS",
                                         os.environ.get("OMP_NUM_THREADS", "2"))))
