"""Deep probabilistic ensembles for active learning, in Keras 3.

Submodules are imported on first use (``dpe_tutorial.kl``,
``dpe_tutorial.acquisition``): the acquisition scores need only numpy, so
using them does not start a Keras backend.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dpe-tutorial")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

_SUBMODULES = (
    "acquisition",
    "active",
    "checks",
    "choices",
    "cli",
    "conjugate",
    "config",
    "data",
    "distribution",
    "ensemble",
    "epoch_checkpoint",
    "experiment",
    "files",
    "kl",
    "lock",
    "metrics",
    "models",
    "plots",
    "priors",
    "progress",
    "provenance",
    "results",
    "round_figures",
    "run_record",
    "shifts",
    "studies",
    "toy",
    "training",
)

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
