"""TensorBoard logging: scalars and images when asked for, nothing otherwise."""
import os

import pytest

from pyro_vim import tensorboard as tb
from pyro_vim.train import Trainer

from .helpers import tiny_config


class Recorder:
    def __init__(self):
        self.scalars, self.images, self.closed = [], [], False

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_image(self, tag, image, step):
        self.images.append((tag, tuple(image.shape), step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_the_trainer_logs_scalars_and_images(tmp_path, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(tb, "available", lambda: True)
    monkeypatch.setattr(tb.TensorBoardLogger, "__init__",
                        lambda self, log_dir, writer=None: setattr(self, "writer", recorder))
    trainer = Trainer(tiny_config(eval_every=2), str(tmp_path), progress=False,
                      tensorboard=True)
    trainer.run(6)
    tags = {tag for tag, _, _ in recorder.scalars}
    assert {"pretrain/loss", "dynamics/loss", "dynamics/kl_z", "dynamics/kl_r",
            "eval/accuracy"} <= tags
    images = {tag: shape for tag, shape, _ in recorder.images}
    c = tiny_config()
    assert images["eval/reconstruction"] == (3, 2 * c.image_size, c.eval_seq_len * c.image_size)
    assert images["eval/module_rollouts"] == (3, c.num_modules * c.image_size, 5 * c.image_size)
    assert recorder.closed


def test_off_by_default_in_tests_and_without_the_package(tmp_path, monkeypatch):
    Trainer(tiny_config(), str(tmp_path / "a"), progress=False).run(3)
    assert not os.path.exists(tmp_path / "a" / "tb")            # PYRO_VIM_TENSORBOARD=0
    monkeypatch.setattr(tb, "available", lambda: False)
    monkeypatch.delenv("PYRO_VIM_TENSORBOARD")
    Trainer(tiny_config(), str(tmp_path / "b"), progress=False).run(3)
    assert not os.path.exists(tmp_path / "b" / "tb")
    with pytest.raises(ValueError, match="pip install"):
        Trainer(tiny_config(), str(tmp_path / "c"), progress=False, tensorboard=True).run(3)


@pytest.mark.skipif(not tb.available(), reason="tensorboard is not installed")
def test_real_event_files(tmp_path):
    Trainer(tiny_config(eval_every=2), str(tmp_path), progress=False, tensorboard=True).run(5)
    files = os.listdir(tmp_path / "tb")
    assert any(f.startswith("events.out.tfevents") for f in files)
