"""ncf: Neural Collaborative Filtering (He et al., WWW 2017) as a real recommender."""

from ncf import split
from ncf._version import __version__
from ncf.data.ids import IdMap
from ncf.data.interactions import Interactions
from ncf.data.io import load_interactions
from ncf.errors import (
    BundleError,
    ConfigError,
    DataError,
    ModelDivergedError,
    NcfError,
    NotFittedError,
    UnknownIdError,
)
from ncf.evaluation import evaluate
from ncf.model import NCF

__all__ = [
    "NCF",
    "BundleError",
    "ConfigError",
    "DataError",
    "IdMap",
    "Interactions",
    "ModelDivergedError",
    "NcfError",
    "NotFittedError",
    "UnknownIdError",
    "__version__",
    "evaluate",
    "load_interactions",
    "split",
]
