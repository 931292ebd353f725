"""Deep probabilistic ensembles for active learning, in Keras 3.

The package is built in floors, each importing only from the floors below it:

=================== =========================================================
``method``           the penalty, priors, members, the ensemble, its training,
                     the acquisition scores and metrics
``running``          configs, the round loop, results folders, resuming, data
``figures``          figures and tables of runs, read from results folders
``studies``          the studies behind the book's findings, their statistics
``book``             what the book's chapters compute and draw
``labelling``        the query on your own images, and merging its labels
``cli``              the ``dpe-tutorial`` command line
=================== =========================================================

The names in :data:`__all__` are the public API, for the book and for
scripts: ``from dpe_tutorial import DeepProbabilisticEnsemble, acquisition``.
Each is imported on first use, so ``import dpe_tutorial`` is cheap, and
``dpe_tutorial.acquisition`` (numpy only) starts no Keras backend.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dpe-tutorial")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# public name -> (module, attribute); attribute None: the name is the module itself
_PUBLIC = {
    # the method
    "kl": ("method.kl", None),
    "acquisition": ("method.acquisition", None),
    "metrics": ("method.metrics", None),
    "DeepProbabilisticEnsemble": ("method.ensemble", "DeepProbabilisticEnsemble"),
    # running experiments
    "ExperimentConfig": ("running.config", "ExperimentConfig"),
    "preset": ("running.config", "preset"),
    "configure": ("running.config", "configure"),
    "run_experiment": ("running.experiment", "run_experiment"),
    "run_comparison": ("running.experiment", "run_comparison"),
    "load_run": ("running.results", "load_run"),
    "find_runs": ("running.results", "find_runs"),
    "toy": ("running.toy", None),
    # labelling your own images
    "query": ("labelling.query", None),
    "merge_labels": ("labelling.merge_labels", "merge_labels"),
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        module, attribute = _PUBLIC[name]
        found = importlib.import_module(f"{__name__}.{module}")
        return found if attribute is None else getattr(found, attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
