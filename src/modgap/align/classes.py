"""Method name -> estimator class, below both the base class and the registry.

``AlignMethod.load`` dispatches a saved state to its class by the method name recorded in
``state.json``; the name is looked up here (never an import path read from the file, which a
received file could point anywhere). The registry of configured names and presets builds on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from modgap.errors import ConfigError

if TYPE_CHECKING:
    from modgap.align.base import AlignMethod

# Classes are imported on first use, so that e.g. ReAlign runs never import torch (AnisoAlign only).
CLASS_PATHS: dict[str, str] = {
    "identity": "modgap.align.baselines:Identity",
    "unicorn": "modgap.align.baselines:Unicorn",
    "liang": "modgap.align.baselines:Liang",
    "c3": "modgap.align.baselines:C3",
    "capdec": "modgap.align.baselines:CapDec",
    "decap": "modgap.align.baselines:DeCap",
    "standardise": "modgap.align.covariance:Standardise",
    "coral": "modgap.align.covariance:Coral",
    "blockwise": "modgap.align.covariance:Blockwise",
    "realign": "modgap.align.realign:ReAlign",
    "anisoalign": "modgap.align.aniso.method:AnisoAlign",
}


def method_class(method: str) -> type[AlignMethod]:
    try:
        module, name = CLASS_PATHS[method].split(":")
    except KeyError:
        raise ConfigError(f"unknown alignment method class {method!r}; known: {sorted(CLASS_PATHS)}") from None
    return getattr(importlib.import_module(module), name)
