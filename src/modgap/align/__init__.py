"""modgap.align: alignment methods as estimators (fit on unpaired statistics, transform texts).

``make(name, params)`` builds a registered method; ``AlignMethod.load(dir)`` restores a fitted one.
"""

from modgap.align.base import AlignMethod, Param
from modgap.align.registry import REGISTRY, make, params_table

__all__ = ["REGISTRY", "AlignMethod", "Param", "make", "params_table"]
