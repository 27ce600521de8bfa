"""ncf: Neural Collaborative Filtering (He et al., WWW 2017) as a real recommender."""

__version__ = "0.1.0"
