"""Experiments: a validated config, named presets, and ``run_experiment`` with its results folder.

A run is one method (acquisition score, beta, KL form) over one or more
trials. ``run_experiment(config, out_dir)`` writes:

- ``config.json``: the resolved config and provenance (dataset with its
  fingerprint, package and library versions, backend, device, git commit, and
  per session the start and end times, epochs trained and rounds resumed);
- ``results.csv``: one row per trial and round, derived from the checkpoints;
- ``rounds/trial{t}_round{r}.npz``: the labelled indices of the round, the
  indices acquired after it with their scores, the scores of the whole
  unlabelled pool and the mean test prediction (for the book's figures);
- ``checkpoints/trial{t}.json``: what a rerun resumes from, and while a round
  trains, ``checkpoints/trial{t}_round{r}_epoch.npz``: its state after its
  last finished epoch;
- ``.lock``: held (``flock``) by the run working in the folder.

Every file is written atomically; rerunning into the same folder resumes
(within a round, from its last finished epoch), after checking every file it
reads. A folder that holds another config, another run's data, or anything
but a results folder is refused, never overwritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from . import acquisition, active, data, kl, lock, metrics, models, provenance, shifts
from .active import RESULT_COLUMNS
from .ensemble import DEFAULT_BETA, LAYOUTS, elbo_multiple
from .files import atomic_write

DATASETS = ("digits", "cifar10", "image_folder")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run. Build it with :meth:`from_dict` to validate it."""

    dataset: str = "digits"
    data_path: str | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    schedule: str | tuple[int, ...] = "linear-4"
    budget: int = 400
    members: int = 4
    member: str = "small_cnn"
    width: int = 8
    layout: str = "branches"
    beta: float | str = DEFAULT_BETA
    kl_form: str = "exclusive"
    regularize_batchnorm: bool = True
    acquisition: str = "predictive_entropy"
    epochs: int = 15
    batch_size: int = 32
    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"
    augment: bool = False
    mixed_precision: bool = False
    trials: int = 1
    seed: int = 0
    eval_batch_size: int = 512
    shift_samples: int = 1000
    name: str = ""

    def __post_init__(self):
        _validate(self)

    @classmethod
    def from_dict(cls, values: dict) -> ExperimentConfig:
        if not isinstance(values, dict):
            raise ValueError(
                f"a config must be a mapping of field: value, got {type(values).__name__}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            valid = ", ".join(sorted(known))
            raise ValueError(
                f"unknown config field(s) {', '.join(unknown)}; valid fields are {valid}"
            )
        values = dict(values)
        if isinstance(values.get("schedule"), list):
            values["schedule"] = tuple(values["schedule"])
        return cls(**values)

    @classmethod
    def from_yaml(cls, path) -> ExperimentConfig:
        """A config from a YAML file of ``field: value`` lines; an empty file is refused.

        Numbers are read as ``--set`` reads them (``1e-2`` is a number, not
        YAML 1.1's string), and a field given twice is an error, not the last
        one silently winning.
        """
        import yaml

        path = Path(path)
        if path.is_dir():
            raise ValueError(f"config file {path} is a folder; give a YAML file of field: value")
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"config file {path} is not a text file (not UTF-8); give a YAML file of "
                "field: value lines"
            ) from None
        try:
            values = yaml.load(text, Loader=_strict_loader())  # a SafeLoader
        except _DuplicateKey as error:
            raise ValueError(f"config file {path} {error}; keep one") from None
        except yaml.YAMLError as error:
            reason = " ".join(str(error).split())
            raise ValueError(f"config file {path} is not valid YAML: {reason}") from None
        if values is None:
            raise ValueError(
                f"config file {path} is empty; write the fields to change as field: value "
                "lines, or use --preset"
            )
        if not isinstance(values, dict):
            raise ValueError(
                f"config file {path} must be a mapping of field: value, got {type(values).__name__}"
            )
        return cls.from_dict({key: _field_value(key, value) for key, value in values.items()})

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        if isinstance(values["schedule"], tuple):
            values["schedule"] = list(values["schedule"])
        return values

    def with_overrides(self, assignments: list[str]) -> ExperimentConfig:
        """A copy with ``key=value`` assignments applied (values parsed as YAML)."""
        import yaml

        values = self.to_dict()
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--set takes key=value, got {assignment!r}")
            try:
                value = yaml.safe_load(text) if text.strip() else None
            except yaml.YAMLError:
                raise ValueError(f"cannot parse the value in {assignment!r}") from None
            values[key.strip()] = _field_value(key.strip(), value)
        return ExperimentConfig.from_dict(values)

    @property
    def method(self) -> str:
        """A short label for plots: which method this run is."""
        if self.acquisition == "random":
            return "random"
        if self.beta == 0:
            return f"ensemble ({self.acquisition})"
        return f"DPE {self.kl_form}, beta={beta_label(self.beta)} ({self.acquisition})"


def beta_label(beta) -> str:
    """``1e-05``, ``elbo`` or ``elbo*0.01``: beta as a user writes it."""
    multiple = elbo_multiple(beta)
    if multiple is None:
        return f"{beta:g}"
    return "elbo" if multiple == 1 else f"elbo*{multiple:g}"


_DECIMAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _yaml_number(value):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; a user writing it means the number."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return value


# Fields whose values are text even when they look like numbers
_TEXT_FIELDS = frozenset({"name", "data_path"})


def _field_value(field: str, value):
    return value if field in _TEXT_FIELDS else _yaml_number(value)


class _DuplicateKey(ValueError):
    pass


def _strict_loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """PyYAML's SafeLoader, except that a key given twice in one mapping is an error."""

        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, Hashable) and key in seen:
                    raise _DuplicateKey(f"gives {key!r} twice (lines {seen[key]} and {line})")
                if isinstance(key, Hashable):
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


PRESETS: dict[str, dict] = {
    # scikit-learn's digits: offline anywhere, under a minute on 2 cores
    "smoke": {
        "name": "smoke",
        "dataset": "digits",
        "schedule": "linear-4",
        "budget": 400,
        "members": 4,
        "member": "small_cnn",
        "width": 8,
        "epochs": 15,
        "batch_size": 32,
        "learning_rate": 0.05,
    },
    # a CIFAR-10 subset with narrow ResNet-18 members: minutes on a CPU
    "cifar10-smoke": {
        "name": "cifar10-smoke",
        "dataset": "cifar10",
        "train_subset": 5000,
        "test_subset": 1000,
        "schedule": "linear-4",
        "budget": 1000,
        "members": 4,
        "member": "resnet18",
        "width": 4,
        "epochs": 10,
        "batch_size": 64,
        "learning_rate": 0.05,
        "augment": True,
    },
    # the papers' protocol: 8 ResNet-18 members, 4k/8k/12k/16k labels (a GPU job)
    "linear-4": {
        "name": "linear-4",
        "dataset": "cifar10",
        "schedule": "linear-4",
        "budget": 16000,
        "members": 8,
        "member": "resnet18",
        "width": 64,
        "acquisition": "predictive_entropy",
        "epochs": 100,
        "batch_size": 128,
        "learning_rate": 0.1,
        "augment": True,
        "mixed_precision": True,
        "eval_batch_size": 1024,
    },
}


def preset(name: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.from_dict(PRESETS[name])
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; valid presets are {', '.join(PRESETS)}"
        ) from None


def configure(
    preset_name: str = "smoke", rounds: int | None = None, **overrides
) -> ExperimentConfig:
    """A preset with the fields that are not None replaced: what a notebook's parameters give.

    ``rounds=K`` sets the schedule to ``linear-K``. Every other keyword is a
    config field; unknown fields and invalid values raise ValueError.
    """
    values = preset(preset_name).to_dict()
    if rounds is not None:
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be a whole number >= 1, got {rounds!r}")
        values["schedule"] = f"linear-{rounds}"
    values.update({key: value for key, value in overrides.items() if value is not None})
    return ExperimentConfig.from_dict(values)


def with_baselines(config: ExperimentConfig) -> list[ExperimentConfig]:
    """``config`` and the two baselines the papers compare it with, run by the same loop.

    The baselines are random acquisition (same ensemble and beta) and the plain
    ensemble (beta = 0, same acquisition). A baseline equal to ``config``
    itself is not repeated.
    """
    variants = [
        config,
        dataclasses.replace(config, acquisition="random"),
        dataclasses.replace(config, beta=0.0),
    ]
    unique: list[ExperimentConfig] = []
    for variant in variants:
        if variant not in unique:
            unique.append(variant)
    return unique


def run_slug(config: ExperimentConfig) -> str:
    """A folder name that tells methods apart: ``dpe-exclusive-elbo-x0.01-predictive_entropy``."""
    if config.beta == 0:
        method = "ensemble"
    else:
        beta = beta_label(config.beta).replace("*", "-x")
        method = f"dpe-{config.kl_form}-{beta}"
    return f"{method}-{config.acquisition}"


def run_comparison(configs, out_root, quiet: bool = False) -> list[Path]:
    """Run (or resume) each config into ``out_root/<name>/<run_slug>``; returns the folders."""
    out_root = Path(out_root)
    folders = []
    for config in configs:
        folder = out_root / (config.name or config.dataset) / run_slug(config)
        run_experiment(config, folder, quiet=quiet)
        folders.append(folder)
    return folders


def _validate(config: ExperimentConfig) -> None:
    def fail(name, allowed, value):
        raise ValueError(f"config field {name!r} must be {allowed}, got {value!r}")

    def whole(name, minimum=1, optional=False):
        value = getattr(config, name)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            fail(name, f"a whole number >= {minimum}" + (" or null" if optional else ""), value)

    def number(name, minimum=0.0, strict=False):
        value = getattr(config, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            fail(name, "a finite number", value)
        if value < minimum or (strict and value == minimum):
            fail(name, f"a number {'>' if strict else '>='} {minimum}", value)

    def choice(name, allowed):
        value = getattr(config, name)
        if value not in allowed:
            fail(name, f"one of {', '.join(allowed)}", value)

    def flag(name):
        if not isinstance(getattr(config, name), bool):
            fail(name, "true or false", getattr(config, name))

    choice("dataset", DATASETS)
    if config.data_path is not None and not isinstance(config.data_path, str):
        fail("data_path", "a path or null", config.data_path)
    if config.dataset == "digits" and config.data_path:
        fail("data_path", "null for dataset digits (it ships with scikit-learn)", config.data_path)
    if config.dataset == "image_folder" and not config.data_path:
        fail("data_path", "the image folder or zip (required for dataset image_folder)", None)
    whole("train_subset", optional=True)
    whole("test_subset", optional=True)
    whole("budget")
    try:
        active.schedule(
            config.schedule if isinstance(config.schedule, str) else list(config.schedule),
            config.budget,
        )
    except ValueError as error:
        fail("schedule", f"a valid schedule for budget {config.budget} ({error})", config.schedule)
    whole("members")
    choice("member", tuple(models.MEMBERS))
    whole("width")
    choice("layout", LAYOUTS)
    try:
        elbo_multiple(config.beta)
    except ValueError:
        fail("beta", 'a number >= 0, "elbo" (E / N) or "elbo*F" (F times E / N)', config.beta)
    if config.members < 2 and config.beta != 0:
        fail(
            "members",
            "at least 2 when beta is not 0 (the KL penalty needs a spread)",
            config.members,
        )
    if isinstance(config.kl_form, str) and config.kl_form in kl.RENAMED_FORMS:
        kl.check_form(config.kl_form, "config field 'kl_form'")  # says the new name
    choice("kl_form", kl.FORMS)
    flag("regularize_batchnorm")
    choice("acquisition", acquisition.names())
    whole("epochs")
    whole("batch_size")
    choice("optimizer", OPTIMIZERS)
    number("learning_rate", strict=True)
    number("momentum")
    number("weight_decay")
    choice("lr_schedule", LR_SCHEDULES)
    flag("augment")
    flag("mixed_precision")
    whole("trials")
    whole("seed", minimum=0)
    whole("eval_batch_size")
    whole("shift_samples", minimum=0)
    if not isinstance(config.name, str):
        fail("name", "a string", config.name)


# -- running -----------------------------------------------------------------

# What a round file holds; a rerun opens every one and checks these load.
ROUND_ARRAYS = ("labelled", "acquired", "acquired_scores", "pool_scores", "test_probs")
_CHECKPOINT_FILE = re.compile(r"^trial(\d+)\.json$")
_ROUND_FILE = re.compile(r"^trial(\d+)_round(\d+)\.npz$")
_EPOCH_FILE = re.compile(r"^trial(\d+)_round(\d+)_epoch\.npz$")


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
    that much training), and ``fit`` starts from what it finds. ``where`` names the round in
    messages; ``session`` (a dict) counts the epochs trained and the resumed
    rounds for ``config.json``.
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
        session: dict | None = None,
    ):
        self.config = config
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.mean, self.std = mean, std
        self.quiet = quiet
        self.seed = int(seed)
        self.epoch_checkpoint = None if epoch_checkpoint is None else Path(epoch_checkpoint)
        self.where = where
        self.session = session
        self.model = None

    checkpoint_interval = 60.0  # seconds of training a stop may lose, at most

    def fit(self, images, labels):
        c = self.config
        self.model = self._build(len(images))
        identity = self._identity(images, labels)
        first = self._restore(identity)
        if first == c.epochs:
            return
        bar = None if self.quiet else EpochBar(c.epochs, first)
        saver = _EpochSaver(lambda epoch: self._save(epoch, identity), c.epochs, self)
        callbacks = [DivergenceCheck(self._divergence_message), saver] + ([bar] if bar else [])
        batches = EpochOrder(images, labels, c.batch_size, self.seed, first)
        try:
            # one fit call for the whole round: a call per epoch costs seconds of set-up each
            self.model.fit(
                batches,
                steps_per_epoch=len(batches),
                shuffle=False,  # the batches are already in their epoch's order
                initial_epoch=first,
                epochs=c.epochs,
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
        for start in _bar(starts, self.quiet, "predicting", unit="chunk"):
            batch = images[start : start + chunk]
            with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf is checked below
                parts.append(
                    self.model.predict_members(batch, batch_size=self.config.eval_batch_size)
                )
        probs = (
            np.concatenate(parts) if parts else np.empty((0, self.config.members, self.n_classes))
        )
        if not np.isfinite(probs).all():
            raise active.TrainingDiverged(
                f"training diverged in {self.where}: after epoch {self.config.epochs} of "
                f"{self.config.epochs} its predictions contain NaN or inf; no row was saved "
                f"for it. {self._what_to_change()}"
            )
        return probs

    def _build(self, n_labelled: int):
        from .ensemble import DeepProbabilisticEnsemble

        c = self.config
        model = DeepProbabilisticEnsemble(
            self.input_shape,
            self.n_classes,
            n_members=c.members,
            member=c.member,
            member_kwargs={"width": c.width},
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
        steps = math.ceil(n_labelled / c.batch_size) * c.epochs
        rate = c.learning_rate
        if c.lr_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(c.learning_rate, decay_steps=steps)
        decay = c.weight_decay or None
        if c.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(rate, momentum=c.momentum, weight_decay=decay)
        else:
            optimizer = keras.optimizers.Adam(rate, weight_decay=decay)
        model.compile(optimizer)
        # now, not at the first step: a resumed round restores these variables before training
        model.optimizer.build(model.trainable_variables)
        return model

    def _identity(self, images, labels) -> dict:
        """What an epoch checkpoint must have been saved for to be resumed from."""
        return {
            "where": self.where,
            "n_labelled": len(images),
            "epochs": self.config.epochs,
            "seed": self.seed,
            "data": _digest(images, labels),
        }

    def _state(self) -> list:
        """Every variable training reads or changes; model.variables includes the seed states."""
        return [*self.model.variables, *self.model.optimizer.variables]

    def _save(self, epoch: int, identity: dict) -> None:
        if self.epoch_checkpoint is None:
            return
        arrays = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._state())}
        arrays["meta"] = np.array(json.dumps({**identity, "epoch": epoch}))
        # one file, replaced atomically: the epoch and the values it describes never disagree
        atomic_write(self.epoch_checkpoint, lambda handle: np.savez(handle, **arrays))

    def _restore(self, identity: dict) -> int:
        """The number of epochs already trained, after loading their state; 0 when none."""
        path = self.epoch_checkpoint
        if path is None or not path.exists():
            return 0
        variables = self._state()
        try:
            epoch, values = _read_epoch_checkpoint(path, identity, variables)
        except ValueError as problem:
            _note(
                f"epoch checkpoint {path} is unusable ({problem}); {self.where} restarts from "
                "its first epoch and replaces it"
            )
            return 0
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        if self.session is not None:
            self.session["resumed"].append({"round": self.where, "from_epoch": epoch})
        return epoch

    def _divergence_message(self, epoch: int, loss: float) -> str:
        return (
            f"training diverged in {self.where}, epoch {epoch} of {self.config.epochs} "
            f"(loss {loss}); no row was saved for it. {self._what_to_change()}"
        )

    def _what_to_change(self) -> str:
        c = self.config
        change = f"a lower learning_rate (now {c.learning_rate:g})"
        if c.beta != 0:
            change += f" or a smaller beta (now {beta_label(c.beta)})"
        return f"Rerun into a new output folder with {change}"


def _read_epoch_checkpoint(path: Path, identity: dict, variables: list) -> tuple[int, list]:
    """(epochs trained, values in the order of ``variables``); ValueError says what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            names = set(stored.files) - {"meta"}
            values = [stored[f"v{i}"] for i in range(min(len(variables), len(names)))]
    except Exception as error:  # zipfile, zlib, numpy and json each raise their own
        raise ValueError(f"{type(error).__name__}: {error}") from None
    if not isinstance(meta, dict) or {k: meta.get(k) for k in identity} != identity:
        raise ValueError("it was saved for another round or labelled set")
    epoch = meta.get("epoch")
    if not isinstance(epoch, int) or not 1 <= epoch <= identity["epochs"]:
        raise ValueError(f"its epoch {epoch!r} is not in 1..{identity['epochs']}")
    if len(names) != len(variables):
        raise ValueError(f"it holds {len(names)} variables, the model has {len(variables)}")
    for variable, value in zip(variables, values, strict=True):
        if value.shape != tuple(variable.shape) or value.dtype != np.dtype(variable.dtype):
            raise ValueError(
                f"{variable.path} is {value.dtype}{list(value.shape)} there, "
                f"{variable.dtype}{list(variable.shape)} in the model"
            )
    return epoch, values


def _digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return digest.hexdigest()


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


class _EpochSaver(keras.callbacks.Callback):
    """Saves the round's state after the first and last epochs, and at most once an interval."""

    def __init__(self, save: Callable[[int], None], epochs: int, learner: EnsembleLearner):
        super().__init__()
        self.save, self.epochs, self.learner = save, epochs, learner
        self.last_save = None

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        now = time.monotonic()
        due = self.last_save is None or now - self.last_save >= self.learner.checkpoint_interval
        if due or done == self.epochs:
            self.save(done)
            self.last_save = now
        if self.learner.session is not None:
            self.learner.session["epochs_trained"] += 1


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
    kept beside it). When the chosen trials are all finished, the data is not
    loaded at all; otherwise it is, and its fingerprint must match the one in
    ``config.json``. Training that diverges raises
    :class:`~dpe_tutorial.active.TrainingDiverged` and saves no row.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    chosen = _chosen_trials(config, trials)
    _check_out_dir(out_dir, config)
    _make_folder(out_dir)
    with lock.hold(out_dir):
        _remove_partial_files(out_dir)
        record = _existing_run(out_dir / "config.json", config)
        if record is None:
            _refuse_foreign_folder(out_dir)
        sizes = _sizes(config)
        done = _check_folder(out_dir, config, sizes)
        pending = [trial for trial in chosen if done.get(trial, 0) < len(sizes)]
        split = None
        if pending:  # a finished run needs no data: it is neither loaded nor checked
            split = load_data(config)
            record = _record_for(record, config, split, sizes, out_dir)
        _sync_results(out_dir, config)
        session = {
            "started": _now(),
            "finished": None,
            "wall_seconds": None,
            "epochs_trained": 0,
            "resumed": [],
        }
        record["sessions"].append(session)
        _write_record(out_dir, record)
        start = time.perf_counter()
        if pending:
            _run_trials(config, out_dir, split, sizes, pending, record, quiet)
        session.update(finished=_now(), wall_seconds=round(time.perf_counter() - start, 3))
        record["wall_seconds"] = round(sum(s["wall_seconds"] or 0 for s in record["sessions"]), 3)
        _write_record(out_dir, record)
        return pd.read_csv(out_dir / "results.csv")


def _run_trials(config, out_dir: Path, split, sizes, pending, record, quiet: bool) -> None:
    pool, test = split.train, split.test
    mean, std = data.channel_statistics(pool.images)  # training images only
    session = record["sessions"][-1]
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

    for trial in _bar(pending, quiet, "trials", unit="trial"):
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
                epoch_checkpoint=_epoch_checkpoint(out_dir, trial, round_index),
                where=f"trial {trial}, round {round_index} ({n_labelled} labels)",
                session=session,
            )

        def save_round(row, output, trial=trial):
            row["trial"] = trial
            arrays = {
                "labelled": output.labelled.astype(np.int32),
                "acquired": output.acquired.astype(np.int32),
                "acquired_scores": output.acquired_scores.astype(np.float32),
                "pool_scores": output.pool_scores.astype(np.float16),
                "test_probs": output.test_probs.astype(np.float16),
            }
            atomic_write(
                _round_file(out_dir, trial, row["round"]),
                lambda handle: np.savez_compressed(handle, **arrays),
            )

        def round_done(rows, trial=trial):
            _write_results(out_dir, config)  # a table every round
            # the round is in its checkpoint now: its epoch state is no longer needed
            _epoch_checkpoint(out_dir, trial, len(rows) - 1).unlink(missing_ok=True)
            _write_record(out_dir, record)  # the session's epoch count so far

        active.run_trial(
            train_images=pool.images,
            train_labels=pool.labels,
            test_images=test.images,
            test_labels=test.labels,
            sizes=sizes,
            make_learner=make_learner,
            acquisition_name=config.acquisition,
            seed=trial_seed,
            checkpoint=_checkpoint_file(out_dir, trial),
            on_round=save_round,
            evaluate_extra=shift_metrics,
            on_checkpoint=round_done,
            progress=None if quiet else _bar_writer,
        )


def _chosen_trials(config: ExperimentConfig, trials) -> list[int]:
    chosen = list(range(config.trials)) if trials is None else list(trials)
    if any(not 0 <= t < config.trials for t in chosen):
        raise ValueError(f"trials must lie in [0, {config.trials}), got {chosen}")
    return chosen


def _sizes(config: ExperimentConfig) -> list[int]:
    schedule = config.schedule if isinstance(config.schedule, str) else list(config.schedule)
    return active.schedule(schedule, config.budget)


def _trial_seed(config: ExperimentConfig, trial: int) -> int:
    return int(np.random.SeedSequence([config.seed, trial]).generate_state(1)[0])


def _checkpoint_file(out_dir: Path, trial: int) -> Path:
    return out_dir / "checkpoints" / f"trial{trial}.json"


def _epoch_checkpoint(out_dir: Path, trial: int, round_index: int) -> Path:
    return out_dir / "checkpoints" / f"trial{trial}_round{round_index}_epoch.npz"


def _round_file(out_dir: Path, trial: int, round_index: int) -> Path:
    return out_dir / "rounds" / f"trial{trial}_round{round_index}.npz"


def _note(message: str) -> None:
    """Say what a rerun repaired: nothing in a results folder changes without a word."""
    from tqdm.auto import tqdm

    tqdm.write(f"dpe-tutorial: {message}", file=sys.stderr)


# -- the results folder --------------------------------------------------------


def _check_out_dir(out_dir: Path, config: ExperimentConfig) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"results folder {out_dir} is a file; give the path of a new folder, or of a "
            "results folder to resume"
        )
    resolved = out_dir.expanduser().resolve()
    for source in _data_sources(config):
        data_root = Path(source).expanduser().resolve()
        if resolved == data_root or data_root in resolved.parents:
            raise ValueError(
                f"results folder {out_dir} is inside the dataset {source}; "
                "choose a folder outside the data, so that results never mix with it"
            )


def _data_sources(config: ExperimentConfig) -> list[str]:
    if config.data_path:
        return [config.data_path]
    if config.dataset == "cifar10" and os.environ.get("DPE_DATA"):
        return [os.environ["DPE_DATA"]]
    return []


def _make_folder(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in out_dir.parents if p.exists() and not p.is_dir()), out_dir)
        raise ValueError(
            f"cannot create results folder {out_dir}: {blocking} is a file, not a folder; "
            "choose another path"
        ) from None


def _remove_partial_files(out_dir: Path) -> None:
    """Temporary files of writes a killed run never finished (we hold the lock: none are live)."""
    for folder in (out_dir, out_dir / "rounds", out_dir / "checkpoints"):
        for path in folder.glob(".*.partial"):
            path.unlink(missing_ok=True)


def _refuse_foreign_folder(out_dir: Path) -> None:
    """A folder without config.json is used only when empty: it might hold anything."""
    found = sorted(p.name for p in out_dir.iterdir() if p.name != lock.LOCK_NAME)
    if not found:
        return
    if {"checkpoints", "rounds", "results.csv"} & set(found):
        raise ValueError(
            f"{out_dir} holds results but no config.json, which says what they are; "
            "restore config.json from a backup, or choose another output folder"
        )
    shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
    raise ValueError(
        f"{out_dir} is not empty ({shown}) and is not a results folder (no config.json); "
        "choose a new or empty folder"
    )


def _existing_run(config_path: Path, config: ExperimentConfig) -> dict | None:
    """The record of the run in the folder, checked to be whole and of ``config``; None if new."""
    if not config_path.exists():
        return None
    try:
        record = json.loads(config_path.read_text(encoding="utf-8"))
        problem = _record_problem(record, _sizes(config))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        problem = f"{type(error).__name__}: {error}"
    if problem:
        raise ValueError(
            f"{config_path} is unreadable or damaged ({problem}); it says which config and "
            "data the folder holds, so it cannot be rebuilt: restore it from a backup, or "
            "choose another output folder"
        )
    stored, wanted = record["config"], config.to_dict()
    if stored != wanted:
        changed = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
        raise ValueError(
            f"{config_path.parent} holds a run of another config "
            f"(differs in {', '.join(changed)}); choose another output folder"
        )
    return record


def _record_problem(record, sizes: list[int]) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in (("config", dict), ("dataset", dict), ("sessions", list)):
        if not isinstance(record.get(key), kind):
            return f"no '{key}' {kind.__name__}"
    if record.get("schedule_sizes") != sizes:
        return f"its schedule_sizes are not {sizes}"
    return None


def _record_for(record, config: ExperimentConfig, split: data.Split, sizes, out_dir: Path) -> dict:
    """A new run's record, or the existing one once its data fingerprint matches ``split``."""
    pool, test = split.train, split.test
    found = {
        "provenance": pool.provenance,
        "pool_size": len(pool),
        "test_size": len(test),
        "class_names": list(pool.class_names),
        "fingerprint": data.fingerprint(split),
    }
    if record is None:
        return {
            "config": config.to_dict(),
            "method": config.method,
            "schedule_sizes": sizes,
            "dataset": {"name": config.dataset, **found},
            "environment": provenance.environment(),
            "sessions": [],
        }
    stored = record["dataset"]
    if stored.get("fingerprint") is None:
        stored["fingerprint"] = found["fingerprint"]
        _note(f"{out_dir}/config.json had no data fingerprint (an older run); recorded this data's")
    elif stored["fingerprint"] != found["fingerprint"]:
        changed = [
            f"{key} {stored.get(key)!r} -> {value!r}"
            for key, value in found.items()
            if key != "fingerprint" and stored.get(key) != value
        ]
        what = "; ".join(changed) or "same source and sizes, other pixels, labels or order"
        raise ValueError(
            f"{out_dir} holds a run on other data (fingerprint {stored['fingerprint'][7:19]} "
            f"-> {found['fingerprint'][7:19]}: {what}); point the config at the data the run "
            "used, or choose another output folder"
        )
    return record


def _write_record(out_dir: Path, record: dict) -> None:
    atomic_write(out_dir / "config.json", json.dumps(record, indent=2))


def _check_folder(out_dir: Path, config: ExperimentConfig, sizes) -> dict[int, int]:
    """Check every checkpoint and round file; returns the rounds done per trial.

    Damaged files raise ValueError naming the file and what to do; epoch
    checkpoints of finished rounds (a run stopped before removing them) go.
    """
    states = {}
    for path in sorted((out_dir / "checkpoints").glob("trial*.json")):
        match = _CHECKPOINT_FILE.match(path.name)
        if match:
            trial = int(match[1])
            seed = _trial_seed(config, trial)
            states[trial] = active._load_checkpoint(path, sizes, config.acquisition, seed)
    done = {trial: len(state["rows"]) for trial, state in states.items()}
    for path in sorted((out_dir / "rounds").glob("trial*.npz")):
        match = _ROUND_FILE.match(path.name)
        if not match:
            continue
        trial, round_index = int(match[1]), int(match[2])
        if round_index == done.get(trial, 0):
            continue  # written by a round that stopped before its checkpoint: it is redone
        if round_index > done.get(trial, 0):
            raise ValueError(
                f"round file {path} is of a round that {_checkpoint_file(out_dir, trial)} "
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
            if not _round_file(out_dir, trial, round_index).exists():
                raise ValueError(
                    f"round file {_round_file(out_dir, trial, round_index)} is missing, though "
                    f"{_checkpoint_file(out_dir, trial)} records its round; "
                    f"{_rerun_hint(out_dir, trial)}"
                )
    for path in (out_dir / "checkpoints").glob("trial*_epoch.npz"):
        match = _EPOCH_FILE.match(path.name)
        if match and int(match[2]) < done.get(int(match[1]), 0):
            path.unlink(missing_ok=True)
    return done


def _rerun_hint(out_dir: Path, trial: int) -> str:
    return (
        f"restore it from a backup, or move {_checkpoint_file(out_dir, trial)} and "
        f"{out_dir / 'rounds'}/trial{trial}_round*.npz away to run trial {trial} again"
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


def _results_text(out_dir: Path, config: ExperimentConfig) -> str | None:
    """results.csv as the checkpoints say it is; None before any round has finished."""
    import pandas as pd

    rows = []
    for checkpoint in sorted((out_dir / "checkpoints").glob("trial*.json")):
        match = _CHECKPOINT_FILE.match(checkpoint.name)
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


def _write_results(out_dir: Path, config: ExperimentConfig) -> None:
    text = _results_text(out_dir, config)
    if text is not None:
        atomic_write(out_dir / "results.csv", text)


def _sync_results(out_dir: Path, config: ExperimentConfig) -> None:
    """Make results.csv what the checkpoints say, and say so when it was not.

    A file that is only behind (rows of rounds that finished after it was
    written are missing) is replaced; one that disagrees otherwise (damaged,
    edited) is kept beside it as ``results.csv.replaced-<time>``.
    """
    path = out_dir / "results.csv"
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
        _note(f"{path} was missing; rebuilt it from the checkpoints")
    elif rebuilt is not None and _is_behind(existing, rebuilt):
        _note(f"{path} lacked finished rounds (a run stopped before writing it); rebuilt it")
    else:
        kept = path.with_name(f"results.csv.replaced-{dt.datetime.now():%Y%m%dT%H%M%S%f}")
        os.replace(path, kept)
        _note(
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


def load_data(config: ExperimentConfig) -> data.Split:
    """The pool and test split a run of ``config`` uses (subsets drawn with fixed seeds).

    The book calls it to draw a finished run's images and labels again.
    """
    split = data.load_dataset(config.dataset, config.data_path)
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


def _bar(iterable, quiet: bool, description: str, unit: str):
    if quiet:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, unit=unit, leave=False)


def _bar_writer(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message)


class EpochBar(keras.callbacks.Callback):
    """A tqdm bar over a round's epochs that shows the latest loss and accuracy.

    A resumed round's bar starts at the epochs already done. Close it when the round ends.
    """

    def __init__(self, epochs: int, done: int = 0):
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=epochs, initial=done, desc="epochs", unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        shown = {
            k: f"{v:.3g}" for k, v in (logs or {}).items() if k in ("loss", "ensemble_accuracy")
        }
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def close(self):
        self.bar.close()
