"""The results folder: a run's files written, checked on a rerun, and read back by the figures.

A run is one method (acquisition score, beta, KL form) over one or more
trials. :func:`dpe_tutorial.running.experiment.run_experiment` writes, through
the writers here and in :mod:`~.run_record` (``config.json``), the files that
:mod:`~.results_folder` names: ``results.csv``, the round files and the
checkpoints.

Every file is written atomically; a rerun checks every file it reads
(:func:`check_folder`). A folder that holds another config, another run's
data, or anything but a results folder is refused, never overwritten.

The readers (:func:`load_run`, :func:`find_runs`, :func:`load_round`, ...)
need only numpy and pandas: this module never imports Keras, so results can
be read and drawn on any machine. A config is used only through
``to_dict()``, ``method`` and ``dataset``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import active
from . import results_folder as folder
from .active import RESULT_COLUMNS
from .files import atomic_write
from .results_folder import CHECKPOINT_FILE, EPOCH_FILE, ROUND_FILE, round_file

if TYPE_CHECKING:
    from .config import ExperimentConfig

# What a round file holds; a rerun opens every one and checks these load.
ROUND_ARRAYS = ("labelled", "acquired", "acquired_scores", "pool_scores", "test_probs")


def note(message: str) -> None:
    """Say what a rerun repaired: nothing in a results folder changes without a word."""
    from tqdm.auto import tqdm

    tqdm.write(f"dpe-tutorial: {message}", file=sys.stderr)


# -- writing: the folder itself -------------------------------------------------


def remove_partial_files(out_dir: Path) -> None:
    """Temporary files of writes a killed run never finished (we hold the lock: none are live)."""
    for inside in (out_dir, out_dir / folder.ROUNDS, out_dir / folder.CHECKPOINTS):
        for path in inside.glob(".*.partial"):
            path.unlink(missing_ok=True)


def refuse_foreign_folder(out_dir: Path) -> None:
    """A folder without config.json is used only when empty: it might hold anything."""
    found = sorted(p.name for p in out_dir.iterdir() if p.name != folder.LOCK)
    if not found:
        return
    if {folder.CHECKPOINTS, folder.ROUNDS, folder.RESULTS} & set(found):
        raise ValueError(
            f"{out_dir} holds results but no {folder.RECORD}, which says what they are; "
            f"restore {folder.RECORD} from a backup, or choose another output folder"
        )
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise ValueError(
        f"{out_dir} is not empty ({shown}) and is not a results folder (no {folder.RECORD}); "
        "choose a new or empty folder"
    )


# -- writing: rounds and checkpoints ---------------------------------------------


def save_round(out_dir: Path, trial: int, round_index: int, output: active.RoundOutput) -> None:
    """Write a round's arrays (:data:`ROUND_ARRAYS`), compressed and in small dtypes."""
    arrays = {
        "labelled": output.labelled.astype(np.int32),
        "acquired": output.acquired.astype(np.int32),
        "acquired_scores": output.acquired_scores.astype(np.float32),
        "pool_scores": output.pool_scores.astype(np.float16),
        "test_probs": output.test_probs.astype(np.float16),
    }
    if output.test_member_probs is not None:  # optional: older folders lack it
        arrays["test_member_probs"] = output.test_member_probs.astype(np.float16)
    atomic_write(
        round_file(out_dir, trial, round_index),
        lambda handle: np.savez_compressed(handle, **arrays),
    )


def check_folder(
    out_dir: Path, sizes, acquisition: str, trial_seed: Callable[[int], int]
) -> dict[int, int]:
    """Check every checkpoint and round file; returns the rounds done per trial.

    ``trial_seed(trial)`` is the seed a trial's checkpoint must record.
    Damaged files raise ValueError naming the file and what to do; epoch
    checkpoints of finished rounds (a run stopped before removing them) go.
    """
    states = {}
    for path in sorted((out_dir / folder.CHECKPOINTS).glob(folder.CHECKPOINT_FILES)):
        match = CHECKPOINT_FILE.match(path.name)
        if match:
            trial = int(match[1])
            states[trial] = active.load_checkpoint(path, sizes, acquisition, trial_seed(trial))
    done = {trial: len(state["rows"]) for trial, state in states.items()}
    for path in sorted((out_dir / folder.ROUNDS).glob(folder.ROUND_FILES)):
        match = ROUND_FILE.match(path.name)
        if not match:
            continue
        trial, round_index = int(match[1]), int(match[2])
        if round_index == done.get(trial, 0):
            continue  # written by a round that stopped before its checkpoint: it is redone
        if round_index > done.get(trial, 0):
            raise ValueError(
                f"round file {path} is of a round that {folder.checkpoint_file(out_dir, trial)} "
                f"does not record; {_rerun_hint(out_dir, trial)}"
            )
        problem = _round_file_problem(path, states[trial]["labelled"], sizes, round_index)
        if problem:
            raise ValueError(
                f"round file {path} is damaged ({problem}); it cannot be rebuilt without "
                f"training again: {_rerun_hint(out_dir, trial)}"
            )
    for trial, rounds in done.items():
        for round_index in range(rounds):
            if not round_file(out_dir, trial, round_index).exists():
                raise ValueError(
                    f"round file {round_file(out_dir, trial, round_index)} is missing, though "
                    f"{folder.checkpoint_file(out_dir, trial)} records its round; "
                    f"{_rerun_hint(out_dir, trial)}"
                )
    for path in (out_dir / folder.CHECKPOINTS).glob(folder.EPOCH_FILES):
        match = EPOCH_FILE.match(path.name)
        if match and int(match[2]) < done.get(int(match[1]), 0):
            path.unlink(missing_ok=True)
    return done


def _rerun_hint(out_dir: Path, trial: int) -> str:
    return (
        f"restore it from a backup, or move {folder.checkpoint_file(out_dir, trial)} and "
        f"{folder.trial_round_files(out_dir, trial)} away to run trial {trial} again"
    )


def _round_file_problem(path: Path, labelled: list[int], sizes, round_index: int) -> str | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in ROUND_ARRAYS}  # reading checks each CRC
    except Exception as error:  # zipfile, zlib and numpy each raise their own
        return f"{type(error).__name__}: {error}"
    start = sizes[round_index]
    end = sizes[round_index + 1] if round_index + 1 < len(sizes) else start
    if not np.array_equal(arrays["labelled"], labelled[:start]):
        return "its labelled indices differ from the checkpoint's"
    if not np.array_equal(arrays["acquired"], labelled[start:end]):
        return "its acquired indices differ from the checkpoint's"
    if arrays["acquired_scores"].shape != (end - start,):
        return f"it has {arrays['acquired_scores'].shape} acquired scores for {end - start} samples"
    return None


# -- writing: results.csv --------------------------------------------------------


def _results_text(out_dir: Path, config: ExperimentConfig) -> str | None:
    """results.csv as the checkpoints say it is; None before any round has finished."""
    rows = []
    for checkpoint in sorted((out_dir / folder.CHECKPOINTS).glob(folder.CHECKPOINT_FILES)):
        match = CHECKPOINT_FILE.match(checkpoint.name)
        if match:
            rows += [
                {**row, "trial": int(match[1])}
                for row in json.loads(checkpoint.read_text(encoding="utf-8"))["rows"]
            ]
    if not rows:
        return None
    table = pd.DataFrame(rows)
    table["method"] = config.method
    table["dataset"] = config.dataset
    extra = [c for c in table.columns if c not in RESULT_COLUMNS and c not in ("method", "dataset")]
    columns = [*RESULT_COLUMNS, "method", "dataset", *extra]
    table = table[columns].sort_values(["trial", "round"])
    return table.to_csv(index=False)


def write_results(out_dir: Path, config: ExperimentConfig) -> None:
    text = _results_text(out_dir, config)
    if text is not None:
        atomic_write(folder.results_file(out_dir), text)


def sync_results(out_dir: Path, config: ExperimentConfig) -> None:
    """Make results.csv what the checkpoints say, and say so when it was not.

    A file that is only behind (rows of rounds that finished after it was
    written are missing) is replaced; one that disagrees otherwise (damaged,
    edited) is kept beside it as ``results.csv.replaced-<time>``.
    """
    path = folder.results_file(out_dir)
    rebuilt = _results_text(out_dir, config)
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = None
    except (OSError, UnicodeDecodeError):
        existing = ""  # unreadable: damaged
    if existing == rebuilt or (existing is None and rebuilt is None):
        return
    if existing is None:
        note(f"{path} was missing; rebuilt it from the checkpoints")
    elif rebuilt is not None and _is_behind(existing, rebuilt):
        note(f"{path} lacked finished rounds (a run stopped before writing it); rebuilt it")
    else:
        kept = path.with_name(f"{folder.RESULTS}.replaced-{dt.datetime.now():%Y%m%dT%H%M%S%f}")
        os.replace(path, kept)
        note(
            f"{path} did not match the checkpoints (damaged or edited); kept it as "
            f"{kept.name}" + (" and rebuilt it from the checkpoints" if rebuilt else "")
        )
    if rebuilt is not None:
        atomic_write(path, rebuilt)


def _is_behind(existing: str, rebuilt: str) -> bool:
    """Whether ``existing`` is whole lines of ``rebuilt``, header first, with rows missing."""
    old, new = existing.splitlines(keepends=True), rebuilt.splitlines(keepends=True)
    if not old or old[0] != new[0] or not existing.endswith("\n"):
        return False
    return len(old) < len(new) and set(old[1:]) <= set(new[1:])


# -- reading ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Run:
    """One results folder: one method over one or more trials.

    ``config`` is the run's resolved config, ``method`` its short label,
    ``results`` the rows of ``results.csv`` sorted by trial and round, and
    ``record`` the whole of ``config.json``. Runs compare by identity (a
    DataFrame has no single truth value).
    """

    path: Path
    config: dict
    method: str
    results: pd.DataFrame
    record: dict

    @property
    def dataset(self) -> str:
        """The dataset's name, as config.json records it."""
        dataset = self.record.get("dataset")
        if isinstance(dataset, dict) and dataset.get("name"):
            return str(dataset["name"])
        return str(self.config.get("dataset", "unknown dataset"))

    @property
    def device(self) -> str | None:
        """The Keras device the run trained on (``cpu:0``, ``gpu:0``), when recorded."""
        environment = self.record.get("environment")
        if isinstance(environment, dict) and environment.get("device"):
            return str(environment["device"])
        return None


def load_run(run_dir) -> Run:
    """Read a results folder's ``config.json`` and ``results.csv``.

    Raises FileNotFoundError for a missing folder or file, and ValueError for
    a file that is unreadable or lacks what the figures need.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"results folder {path} does not exist")
    config_path = folder.record_file(path)
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{path} has no {folder.RECORD}: it is not a results folder written by run_experiment"
        )
    try:
        record = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{config_path} must hold a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("config"), dict):
        raise ValueError(f"{config_path} has no 'config' object")
    if not isinstance(record.get("method"), str) or not record["method"]:
        raise ValueError(f"{config_path} has no 'method' label")

    results_path = folder.results_file(path)
    if not results_path.is_file():
        raise FileNotFoundError(
            f"{path} has no {folder.RESULTS}: no trial of this run has finished yet"
        )
    try:
        results = pd.read_csv(results_path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{results_path} is not a readable CSV file: {error}") from None
    missing = [column for column in RESULT_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(
            f"{results_path} lacks the column(s) {', '.join(missing)}; "
            f"a results table needs {', '.join(RESULT_COLUMNS)}"
        )
    if results.empty:
        raise ValueError(f"{results_path} has no rows")
    results = results.sort_values(["trial", "round"], kind="stable").reset_index(drop=True)
    return Run(
        path=path, config=record["config"], method=record["method"], results=results, record=record
    )


def find_runs(root) -> list[Run]:
    """Every results folder under ``root`` (at any depth) that has a results table, sorted by path.

    A folder whose run has not finished a round yet (no ``results.csv``) is
    skipped; a folder with a broken ``config.json`` or table raises, naming it.
    A missing ``root`` gives an empty list.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    return [
        load_run(config.parent)
        for config in sorted(root.rglob(folder.RECORD))
        if folder.results_file(config.parent).is_file()
    ]


def as_runs(runs) -> list[Run]:
    """``runs`` (one Run or several) as a non-empty list; anything else is a ValueError."""
    runs = [runs] if isinstance(runs, Run) else list(runs)
    if not runs:
        raise ValueError("runs must hold at least one Run (from load_run)")
    for run in runs:
        if not isinstance(run, Run):
            raise ValueError(
                f"runs must hold Run objects (from load_run), got {type(run).__name__}"
            )
    return runs


def tables_under(root, folders: str, method_of: Callable[[dict], str]) -> pd.DataFrame:
    """Every row of every ``results.csv`` in the run folders matching ``root/folders``, with its
    run's method (``method_of`` of the run's config, as a dict) and folder: a study's rows in
    one table."""
    pattern = f"{folders}/{folder.RESULTS}"
    frames = []
    for path in sorted(Path(root).glob(pattern)):
        config = json.loads(folder.record_file(path.parent).read_text())["config"]
        table = pd.read_csv(path)
        table["method"] = method_of(config)
        table["folder"] = str(path.parent)
        frames.append(table)
    if not frames:
        raise ValueError(f"no results under {Path(root)}/{pattern}")
    return pd.concat(frames, ignore_index=True)


def group_runs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs grouped by what they can be compared on: the config's name (preset) and dataset.

    Keys read ``"linear-4 on cifar10"``; groups keep the order of ``runs``.
    """
    groups: dict[str, list[Run]] = {}
    for run in as_runs(runs):
        name = run.config.get("name") or "unnamed"
        groups.setdefault(f"{name} on {run.dataset}", []).append(run)
    return groups


def saved_rounds(run: Run, trial: int) -> list[int]:
    """The rounds saved for a trial, in order; FileNotFoundError when there is none."""
    rounds_dir = run.path / folder.ROUNDS
    saved = (
        sorted(
            (int(match[1]), int(match[2]))
            for match in (
                ROUND_FILE.fullmatch(file.name) for file in rounds_dir.glob(folder.ROUND_FILES)
            )
            if match
        )
        if rounds_dir.is_dir()
        else []
    )
    rounds = [r for t, r in saved if t == trial]
    if not rounds:
        trials = sorted({t for t, _ in saved})
        have = f"saved trials are {', '.join(map(str, trials))}" if trials else "none is saved"
        raise FileNotFoundError(f"{rounds_dir} holds no round of trial {trial}; {have}")
    return rounds


def load_round(run: Run, trial: int = 0, round: int | None = None) -> dict[str, np.ndarray]:
    """The arrays saved for one round of one trial (``round=None``: its last round)."""
    rounds = saved_rounds(run, trial)
    if round is None:
        round = rounds[-1]
    if round not in rounds:
        raise FileNotFoundError(
            f"{run.path} has no round {round} for trial {trial}; "
            f"saved rounds are {', '.join(map(str, rounds))}"
        )
    file = round_file(run.path, trial, round)
    with np.load(file) as saved:
        missing = [name for name in ROUND_ARRAYS if name not in saved.files]
        if missing:
            raise ValueError(f"{file} lacks the array(s) {', '.join(missing)}")
        return {name: saved[name] for name in ROUND_ARRAYS}
