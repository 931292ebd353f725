"""The results folder's layout: the name of every file a run writes, spelled here and only here.

:func:`dpe_tutorial.running.experiment.run_experiment` writes a folder per
run; the writers and readers (:mod:`~.results`, :mod:`~.run_record`,
:mod:`~.lock`, the figures, the studies) take the names from here:

======================================== =====================================
``config.json`` (:data:`RECORD`)          the resolved config and provenance
                                          (dataset with its fingerprint,
                                          versions, backend, device, commit,
                                          and per session the start and end
                                          times, epochs trained and rounds
                                          resumed): :mod:`~.run_record`
``results.csv`` (:data:`RESULTS`)         one row per trial and round, derived
                                          from the checkpoints
``rounds/trial{t}_round{r}.npz``          the round's labelled indices, the
                                          ones acquired after it with their
                                          scores, the pool's scores and the
                                          mean test prediction (and with
                                          ``member_predictions`` every member's)
``checkpoints/trial{t}.json``             what a rerun resumes from
``checkpoints/trial{t}_round{r}_epoch.npz`` while a round trains: its state
                                          after its last finished epoch
``.lock`` (:data:`LOCK`)                  held (``flock``) by the run working
                                          in the folder: :mod:`~.lock`
======================================== =====================================

Plain names and paths: no numpy, pandas or Keras.
"""

from __future__ import annotations

import re
from pathlib import Path

RECORD = "config.json"
RESULTS = "results.csv"
ROUNDS = "rounds"
CHECKPOINTS = "checkpoints"
LOCK = ".lock"

CHECKPOINT_FILE = re.compile(r"^trial(\d+)\.json$")
ROUND_FILE = re.compile(r"^trial(\d+)_round(\d+)\.npz$")
EPOCH_FILE = re.compile(r"^trial(\d+)_round(\d+)_epoch\.npz$")
# glob patterns of the files above, inside their folders
CHECKPOINT_FILES = "trial*.json"
ROUND_FILES = "trial*.npz"
EPOCH_FILES = "trial*_epoch.npz"


def record_file(out_dir) -> Path:
    return Path(out_dir) / RECORD


def results_file(out_dir) -> Path:
    return Path(out_dir) / RESULTS


def checkpoint_file(out_dir, trial: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"trial{trial}.json"


def epoch_checkpoint(out_dir, trial: int, round_index: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"trial{trial}_round{round_index}_epoch.npz"


def round_file(out_dir, trial: int, round_index: int) -> Path:
    return Path(out_dir) / ROUNDS / f"trial{trial}_round{round_index}.npz"


def trial_round_files(out_dir, trial: int) -> str:
    """The round files of one trial, as a glob pattern for a message."""
    return f"{Path(out_dir) / ROUNDS}/trial{trial}_round*.npz"
