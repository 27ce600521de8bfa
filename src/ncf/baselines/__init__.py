"""Baselines behind the same interface as :class:`ncf.NCF` (fit / recommend / score)."""

from ncf.baselines.popularity import Popularity

__all__ = ["Popularity"]
