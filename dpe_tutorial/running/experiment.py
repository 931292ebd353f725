"""Running experiments: ``run_experiment`` trains the trials of a config into a results folder.

A run is one method (acquisition score, beta, KL form) over one or more
trials; its config is a :class:`~dpe_tutorial.running.config.ExperimentConfig` and
its folder's files are :mod:`dpe_tutorial.running.results`' (``results.csv``, round
files and checkpoints) and :mod:`dpe_tutorial.running.run_record`'s (``config.json``).
:class:`~dpe_tutorial.running.learner.EnsembleLearner` trains one round's ensemble,
resumable after any epoch; :func:`run_comparison` runs several methods side
by side.

Rerunning into the same folder resumes (within a round, from its last
finished epoch), after checking every file it reads. A folder that holds
another config, another run's data, or anything but a results folder is
refused, never overwritten.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from ..method import distribution, metrics, shifts
from . import (
    active,
    data,
    lock,
    precision,
    progress,
    provenance,
    results,
    results_folder,
    run_record,
)
from .config import (  # noqa: F401  (configs are importable from here, as they were)
    PRESETS,
    ExperimentConfig,
    beta_label,
    configure,
    preset,
    run_slug,
    schedule_sizes,
    with_baselines,
)
from .learner import DivergenceCheck, EnsembleLearner, EpochOrder  # noqa: F401  (re-exported)


def run_comparison(configs, out_root, quiet: bool = False) -> list[Path]:
    """Run (or resume) each config into ``out_root/<name>/<run_slug>``; returns the folders."""
    out_root = Path(out_root)
    folders = []
    for config in configs:
        folder = out_root / (config.name or config.dataset) / run_slug(config)
        run_experiment(config, folder, quiet=quiet)
        folders.append(folder)
    return folders


def run_experiment(config: ExperimentConfig, out_dir, quiet: bool = False, trials=None):
    """Run (or resume) the trials of ``config`` into ``out_dir``; returns the results table.

    ``trials`` (indices below ``config.trials``) runs only those trials in
    this call, so a study can finish one trial of every method before it
    starts the next; by default every trial runs.

    The folder is locked for the call (:mod:`dpe_tutorial.running.lock`). Every file a
    rerun reads is checked first; ``results.csv`` is rebuilt from the
    checkpoints whenever it is missing, behind or damaged (a damaged one is
    kept beside it). When the chosen trials are all finished, nothing is
    written (no session is recorded) and the data is not loaded; otherwise
    it is, and its fingerprint must match the one in ``config.json``. Training that diverges raises
    :class:`~dpe_tutorial.running.active.TrainingDiverged` and saves no row.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    chosen = _chosen_trials(config, trials)
    # the backend and the device count are this process's: refused before a folder is made
    distribution.check(config.distribution, config.layout, config.members)
    distribution.check_batches(config.distribution, schedule_sizes(config), config.batch_size)
    _check_out_dir(out_dir, _data_sources(config))
    _make_folder(out_dir)
    with lock.hold(out_dir):
        results.remove_partial_files(out_dir)
        sizes = schedule_sizes(config)
        record = run_record.existing_run(results_folder.record_file(out_dir), config, sizes)
        if record is None:
            results.refuse_foreign_folder(out_dir)
        done = results.check_folder(
            out_dir, sizes, config.acquisition, lambda trial: _trial_seed(config, trial)
        )
        pending = [trial for trial in chosen if done.get(trial, 0) < len(sizes)]
        split = None
        if pending:  # a finished run needs no data: it is neither loaded nor checked
            split = load_data(config)
            record = run_record.record_for(record, config, split, sizes, out_dir)
        results.sync_results(out_dir, config)
        if not pending:  # read-only: a finished run's folder stays as it is
            if not quiet:
                progress.write(f"{out_dir}: finished, trials {chosen}; nothing to run")
            return pd.read_csv(results_folder.results_file(out_dir))
        session = {
            "started": _now(),
            "finished": None,
            "wall_seconds": None,
            "epochs_trained": 0,
            "rounds": [],  # the (trial, round) pairs this session finished
            "precision": precision.describe(config.mixed_precision),
            "resumed": [],
            # a run can span sessions, commits and machines: each session says its own
            **provenance.session_environment(),
        }
        record["sessions"].append(session)
        run_record.write_record(out_dir, record)
        start = time.perf_counter()

        def record_progress(finished: bool = False) -> None:
            # written at every save, so a session that is killed keeps the time it worked
            session["wall_seconds"] = round(time.perf_counter() - start, 3)
            if finished:
                session["finished"] = _now()
            total = sum(s["wall_seconds"] or 0 for s in record["sessions"])
            record["wall_seconds"] = round(total, 3)
            run_record.write_record(out_dir, record)

        _run_trials(config, out_dir, split, sizes, pending, session, record_progress, quiet)
        record_progress(finished=True)
        return pd.read_csv(results_folder.results_file(out_dir))


def _run_trials(
    config, out_dir: Path, split, sizes, pending, session: dict, record_progress, quiet: bool
) -> None:
    pool, test = split.train, split.test
    mean, std = data.channel_statistics(pool.images)  # training images only
    shifted = (  # shifted_sets of 0 samples would average an empty array
        shifts.shifted_sets(test.images, config.shift_samples, seed=config.seed)
        if config.shift_samples
        else {}
    )

    def shift_metrics(learner):
        if not config.shift_samples:
            return {}
        test_probs = learner.predict_members(test.images[: config.shift_samples])
        return {
            f"auroc_{kind}": metrics.separation_auroc(test_probs, learner.predict_members(images))
            for kind, images in shifted.items()
        }

    for trial in progress.bar(pending, quiet, "trials", unit="trial"):
        trial_seed = _trial_seed(config, trial)

        def make_learner(round_index, n_labelled, trial=trial, trial_seed=trial_seed):
            round_seed = (trial_seed + 7919 * (round_index + 1)) % 2**31
            keras.utils.set_random_seed(round_seed)
            return EnsembleLearner(
                config,
                pool.image_shape,
                len(pool.class_names),
                mean,
                std,
                quiet,
                seed=round_seed,
                epoch_checkpoint=results_folder.epoch_checkpoint(out_dir, trial, round_index),
                where=f"trial {trial}, round {round_index} ({n_labelled} labels)",
                session=session,
                on_save=record_progress,
            )

        def save_round(row, output, trial=trial):
            row["trial"] = trial
            results.save_round(out_dir, trial, row["round"], output)
            session["rounds"].append([trial, int(row["round"])])
            if not quiet:
                progress.write(progress.round_line(trial, len(sizes), row))

        def round_done(rows, trial=trial):
            results.write_results(out_dir, config)  # a table every round
            # the round is in its checkpoint now: its epoch state is no longer needed
            results_folder.epoch_checkpoint(out_dir, trial, len(rows) - 1).unlink(missing_ok=True)
            record_progress()  # the session's epochs and time so far

        active.run_trial(
            train_images=pool.images,
            train_labels=pool.labels,
            test_images=test.images,
            test_labels=test.labels,
            sizes=sizes,
            make_learner=make_learner,
            acquisition_name=config.acquisition,
            seed=trial_seed,
            checkpoint=results_folder.checkpoint_file(out_dir, trial),
            on_round=save_round,
            evaluate_extra=shift_metrics,
            on_checkpoint=round_done,
            progress=None if quiet else progress.write,
            initial_labels=config.initial_labels,
            pool_subset=config.pool_subset,
            selection=config.selection,
            member_predictions=config.member_predictions,
        )


def _chosen_trials(config: ExperimentConfig, trials) -> list[int]:
    chosen = list(range(config.trials)) if trials is None else list(trials)
    if any(not 0 <= t < config.trials for t in chosen):
        raise ValueError(f"trials must lie in [0, {config.trials}), got {chosen}")
    return chosen


def _trial_seed(config: ExperimentConfig, trial: int) -> int:
    return int(np.random.SeedSequence([config.seed, trial]).generate_state(1)[0])


def _check_out_dir(out_dir: Path, data_sources: Sequence[str]) -> None:
    """Refuse a file, or a folder inside the data the run reads (``data_sources``)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"results folder {out_dir} is a file; give the path of a new folder, or of a "
            "results folder to resume"
        )
    resolved = out_dir.expanduser().resolve()
    for source in data_sources:
        data_root = Path(source).expanduser().resolve()
        if resolved == data_root or data_root in resolved.parents:
            raise ValueError(
                f"results folder {out_dir} is inside the dataset {source}; "
                "choose a folder outside the data, so that results never mix with it"
            )


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), out_dir)
        raise ValueError(
            f"cannot create results folder {out_dir}: {blocking} is a file, not a folder; "
            "choose another path"
        ) from None


def _data_sources(config: ExperimentConfig) -> list[str]:
    if config.data_path:
        return [config.data_path]
    if config.dataset == "cifar10" and os.environ.get("DPE_DATA"):
        return [os.environ["DPE_DATA"]]
    return []


def load_data(config: ExperimentConfig, root=None) -> data.Split:
    """The pool and test split a run of ``config`` uses (subsets drawn with fixed seeds).

    The book calls it to draw a finished run's images and labels again. A
    relative ``data_path`` is relative to the folder the run was started in;
    ``root`` names that folder when the caller is elsewhere (the book runs in
    ``book/``, the studies ran in the repository root).
    """
    data_path = config.data_path
    if data_path and root is not None and not Path(data_path).is_absolute():
        data_path = str(Path(root) / data_path)
    split = data.load_dataset(config.dataset, data_path)
    train, test = split.train, split.test
    if config.train_subset is not None and config.train_subset < len(train):
        chosen = np.sort(np.random.default_rng(0).permutation(len(train))[: config.train_subset])
        train = train.subset(chosen)
    if config.test_subset is not None and config.test_subset < len(test):
        chosen = np.sort(np.random.default_rng(1).permutation(len(test))[: config.test_subset])
        test = test.subset(chosen)
    if config.budget > len(train):
        raise ValueError(
            f"config field 'budget' ({config.budget}) is larger than the pool ({len(train)} images)"
        )
    return data.Split(train=train, test=test)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
