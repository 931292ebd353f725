"""Running experiments: ``run_experiment`` trains the trials of a config into a results folder.

A run is one method (acquisition score, beta, KL form) over one or more
trials; its config is a :class:`~dpe_tutorial.config.ExperimentConfig` and
its folder's files are :mod:`dpe_tutorial.results`' (``results.csv``, round
files and checkpoints) and :mod:`dpe_tutorial.run_record`'s (``config.json``).
:class:`EnsembleLearner` trains one round's ensemble, resumable after any
epoch (:mod:`dpe_tutorial.epoch_checkpoint`);
:func:`run_comparison` runs several methods side by side.

Rerunning into the same folder resumes (within a round, from its last
finished epoch), after checking every file it reads. A folder that holds
another config, another run's data, or anything but a results folder is
refused, never overwritten.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from . import (
    active,
    data,
    distribution,
    lock,
    metrics,
    progress,
    provenance,
    results,
    run_record,
    shifts,
    training,
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
from .epoch_checkpoint import EpochCheckpoint, EpochSaver, round_identity


def run_comparison(configs, out_root, quiet: bool = False) -> list[Path]:
    """Run (or resume) each config into ``out_root/<name>/<run_slug>``; returns the folders."""
    out_root = Path(out_root)
    folders = []
    for config in configs:
        folder = out_root / (config.name or config.dataset) / run_slug(config)
        run_experiment(config, folder, quiet=quiet)
        folders.append(folder)
    return folders


class EnsembleLearner(active.Learner):
    """A fresh DeepProbabilisticEnsemble per round, trained as the config says.

    Training visits the labelled set in an order drawn from ``seed`` and the
    epoch (:class:`EpochOrder`), so that it can stop after an epoch and go on
    later, in another process, exactly as if it had not stopped. With
    ``epoch_checkpoint`` set, every variable of the model (the weights, the
    batch-norm statistics, the augmentation layers' seed-generator states) and
    of the optimizer (its step count, which drives the learning-rate schedule,
    and its momenta) is saved there after the first and the last epoch and
    after any epoch that ends ``checkpoint_interval`` seconds or more after the
    last save (a full-size ensemble's state is large; a stop loses at most
    that much training), and ``fit`` starts from what it finds. ``where``
    names the round in messages, ``diverged`` says what divergence leaves
    and leads into what to change; ``session`` (a dict) counts the epochs
    trained and the resumed rounds for ``config.json``; ``on_save`` is called
    after each epoch save (to record the session's progress with it).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        input_shape,
        n_classes,
        mean,
        std,
        quiet: bool,
        *,
        seed: int = 0,
        epoch_checkpoint=None,
        where: str = "this round",
        diverged: str = "no row was saved for it. Rerun into a new output folder with",
        session: dict | None = None,
        on_save: Callable[[], None] | None = None,
    ):
        self.config = config
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.mean, self.std = mean, std
        self.quiet = quiet
        self.seed = int(seed)
        self.epoch_checkpoint = None if epoch_checkpoint is None else Path(epoch_checkpoint)
        self.where, self.diverged = where, diverged
        self.session = session
        self.on_save = on_save
        self.model = None

    checkpoint_interval = 60.0  # seconds of training a stop may lose, at most

    def fit(self, images, labels):
        c = self.config
        self.model = self._build(len(images))
        identity = self._identity(images, labels)
        first = self._restore(identity)
        if first == self.epochs:
            return
        bar = None if self.quiet else progress.EpochBar(self.epochs, first)
        saver = EpochSaver(lambda epoch: self._save(epoch, identity), self.epochs, self)
        callbacks = [DivergenceCheck(self._divergence_message), saver] + ([bar] if bar else [])
        batches = EpochOrder(images, labels, c.batch_size, self.seed, first)
        try:
            # one fit call for the whole round: a call per epoch costs seconds of set-up each
            with distribution.scope(self._distribution):
                self.model.fit(
                    batches,
                    steps_per_epoch=len(batches),
                    shuffle=False,  # the batches are already in their epoch's order
                    initial_epoch=first,
                    epochs=self.epochs,
                    verbose=0,
                    callbacks=callbacks,
                )
        finally:
            if bar is not None:
                bar.close()

    def predict_members(self, images):
        chunk = 8192
        parts = []
        starts = range(0, len(images), chunk)
        for start in progress.bar(starts, self.quiet, "predicting", unit="chunk"):
            batch = images[start : start + chunk]
            with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf is checked below
                parts.append(
                    self.model.predict_members(
                        batch, batch_size=self.config.eval_batch_size, passes=self.config.passes
                    )
                )
        probs = (
            np.concatenate(parts)
            if parts
            else np.empty((0, self.config.members * self.config.passes, self.n_classes))
        )
        if not np.isfinite(probs).all():
            raise active.TrainingDiverged(
                f"training diverged in {self.where}: after epoch {self.epochs} of "
                f"{self.epochs} its predictions contain NaN or inf; {self.diverged} "
                f"{self._what_to_change()}"
            )
        return probs

    def _build(self, n_labelled: int):
        c = self.config
        # the variables are laid out over the devices as they are created, so the model is
        # built (and trained, in fit) inside the distribution's scope
        self._distribution = distribution.make(c.distribution, c.layout, c.members)
        with distribution.scope(self._distribution):
            return self._build_here(n_labelled)

    def _build_here(self, n_labelled: int):
        from .ensemble import DeepProbabilisticEnsemble

        c = self.config
        model = DeepProbabilisticEnsemble(
            self.input_shape,
            self.n_classes,
            n_members=c.members,
            member=c.member,
            member_kwargs={"width": c.width, **({"stochastic": True} if c.passes > 1 else {})},
            layout=c.layout,
            beta=c.beta,
            kl_form=c.kl_form,
            regularize_batchnorm=c.regularize_batchnorm,
            mixed_precision=c.mixed_precision,
            labeled_size=n_labelled,
            input_mean=self.mean,
            input_std=self.std,
            augment=c.augment,
        )
        self.epochs = training.round_epochs(n_labelled, c.batch_size, c.epochs, c.steps)
        steps = math.ceil(n_labelled / c.batch_size) * self.epochs
        chosen = training.optimizer(
            c.optimizer,
            c.learning_rate,
            schedule=c.lr_schedule,
            steps=steps,
            momentum=c.momentum,
            weight_decay=c.weight_decay,
        )
        return training.compile_for_training(model, chosen)

    def _identity(self, images, labels) -> dict:
        return round_identity(self.where, images, labels, self.epochs, self.seed)

    def _state(self) -> list:
        """Every variable training reads or changes; model.variables includes the seed states."""
        return [*self.model.variables, *self.model.optimizer.variables]

    def _save(self, epoch: int, identity: dict) -> None:
        EpochCheckpoint(self.epoch_checkpoint, self.where).save(self._state(), epoch, identity)
        if self.on_save is not None:
            self.on_save()

    def _restore(self, identity: dict) -> int:
        """The number of epochs already trained, after loading their state; 0 when none."""
        checkpoint = EpochCheckpoint(self.epoch_checkpoint, self.where, self.session)
        return checkpoint.restore(self._state(), identity)

    def _divergence_message(self, epoch: int, loss: float) -> str:
        return (
            f"training diverged in {self.where}, epoch {epoch} of {self.epochs} "
            f"(loss {loss}); {self.diverged} {self._what_to_change()}"
        )

    def _what_to_change(self) -> str:
        c = self.config
        change = f"a lower learning_rate (now {c.learning_rate:g})"
        if c.beta != 0:
            change += f" or a smaller beta (now {beta_label(c.beta)})"
        return change


class EpochOrder(keras.utils.PyDataset):
    """The labelled set in batches, shuffled by an order drawn from (seed, epoch).

    Our order rather than ``fit``'s shuffle: a round resumed at epoch ``first``
    sees exactly the batches the uninterrupted round would have seen. Batches
    are numbered across epochs (``fit`` needs ``steps_per_epoch=len(self)``,
    ``num_batches`` is None), so a batch's content depends on its number
    alone, not on when a prefetching pipeline asks for it.
    """

    def __init__(self, images, labels, batch_size: int, seed: int, first: int = 0):
        super().__init__()  # one worker: no enqueuer threads
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.first = batch_size, seed, first
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self):
        """Batches per epoch."""
        return math.ceil(len(self.images) / self.batch_size)

    @property
    def num_batches(self):
        return None  # an endless stream; fit stops it after its epochs

    def __getitem__(self, index):
        epoch, batch = divmod(index, len(self))
        epoch += self.first
        if epoch not in self._orders:
            rng = np.random.default_rng([self.seed, epoch])
            self._orders = {epoch: rng.permutation(len(self.images))}  # the current epoch only
        chosen = self._orders[epoch][batch * self.batch_size : (batch + 1) * self.batch_size]
        return self.images[chosen], self.labels[chosen]


class DivergenceCheck(keras.callbacks.Callback):
    """Raises TrainingDiverged at the end of an epoch whose loss is NaN or infinite."""

    def __init__(self, message: Callable[[int, float], str]):
        super().__init__()
        self.message = message

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise active.TrainingDiverged(self.message(epoch + 1, float(loss)))


def run_experiment(config: ExperimentConfig, out_dir, quiet: bool = False, trials=None):
    """Run (or resume) the trials of ``config`` into ``out_dir``; returns the results table.

    ``trials`` (indices below ``config.trials``) runs only those trials in
    this call, so a study can finish one trial of every method before it
    starts the next; by default every trial runs.

    The folder is locked for the call (:mod:`dpe_tutorial.lock`). Every file a
    rerun reads is checked first; ``results.csv`` is rebuilt from the
    checkpoints whenever it is missing, behind or damaged (a damaged one is
    kept beside it). When the chosen trials are all finished, nothing is
    written (no session is recorded) and the data is not loaded; otherwise
    it is, and its fingerprint must match the one in ``config.json``. Training that diverges raises
    :class:`~dpe_tutorial.active.TrainingDiverged` and saves no row.
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
        record = run_record.existing_run(out_dir / "config.json", config, sizes)
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
            return pd.read_csv(out_dir / "results.csv")
        session = {
            "started": _now(),
            "finished": None,
            "wall_seconds": None,
            "epochs_trained": 0,
            "rounds": [],  # the (trial, round) pairs this session finished
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
        return pd.read_csv(out_dir / "results.csv")


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
                epoch_checkpoint=results.epoch_checkpoint(out_dir, trial, round_index),
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
            results.epoch_checkpoint(out_dir, trial, len(rows) - 1).unlink(missing_ok=True)
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
            checkpoint=results.checkpoint_file(out_dir, trial),
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
