"""pyro-vim: VIM (Variational Independent Modules for Video Prediction, Assouel et al. 2022)."""
# register the model families and parts; pretrained is callable: pyro_vim.pretrained("name")
from . import baselines, duplicates, pretrained, tracking  # noqa: F401
from .config import DataConfig, VIMConfig
from .data import (
                   MOVES,
                   BouncingBalls,
                   CompositionalRandomWalk,
                   OODRandomWalk,
                   RandomWalk,
                   VideoBatch,
                   make_dataset,
)
from .distributions import SafeRelaxedOneHotCategorical, SpatialGaussianMixture
from .guides import KeyQueryGuide, SlotAttentionGuide
from .model import VIM, SlotState
from .models import build_model, load_model
from .priors import KeyQueryPrior, UniformPrior

__version__ = "0.1.0"

__all__ = ["VIM", "VIMConfig", "DataConfig", "build_model", "load_model",
           "SlotState", "VideoBatch", "RandomWalk", "CompositionalRandomWalk",
           "OODRandomWalk", "BouncingBalls", "MOVES", "make_dataset",
           "SafeRelaxedOneHotCategorical",
           "SpatialGaussianMixture", "SlotAttentionGuide", "KeyQueryGuide", "KeyQueryPrior",
           "UniformPrior", "pretrained"]
