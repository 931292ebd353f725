"""Experiments: a validated config, named presets, and ``run_experiment`` with its results folder.

A run is one method (acquisition score, beta, KL form) over one or more
trials. ``run_experiment(config, out_dir)`` writes:

- ``config.json``: the resolved config and provenance (dataset, package and
  library versions, backend, device, git commit, start and end times);
- ``results.csv``: one row per trial and round;
- ``rounds/trial{t}_round{r}.npz``: the labelled indices of the round, the
  indices acquired after it with their scores, the scores of the whole
  unlabelled pool and the mean test prediction (for the book's figures);
- ``checkpoints/trial{t}.json``: what a rerun resumes from.

Every file is written atomically; rerunning into the same folder resumes, and
a folder that holds another config is refused, never overwritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from . import acquisition, active, data, kl, metrics, models, provenance, shifts
from .active import RESULT_COLUMNS
from .ensemble import LAYOUTS, elbo_multiple
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
    beta: float | str = "elbo"
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
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ValueError(f"config file {path} is not valid YAML: {error}") from None
        return cls.from_dict(values or {})

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
            values[key.strip()] = _yaml_number(value)
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
    """A folder name that tells the method apart: ``dpe-exclusive-elbo-x0.01-predictive_entropy``."""
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
    try:
        kl.check_form(config.kl_form, "config field 'kl_form'")
    except ValueError as error:
        raise ValueError(str(error)) from None
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


class EnsembleLearner(active.Learner):
    """A fresh DeepProbabilisticEnsemble per round, trained as the config says."""

    def __init__(self, config: ExperimentConfig, input_shape, n_classes, mean, std, quiet: bool):
        self.config = config
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.mean, self.std = mean, std
        self.quiet = quiet
        self.model = None

    def fit(self, images, labels):
        from .ensemble import DeepProbabilisticEnsemble

        c = self.config
        self.model = DeepProbabilisticEnsemble(
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
            labeled_size=len(images),
            input_mean=self.mean,
            input_std=self.std,
            augment=c.augment,
        )
        steps = math.ceil(len(images) / c.batch_size) * c.epochs
        rate = c.learning_rate
        if c.lr_schedule == "cosine":
            rate = keras.optimizers.schedules.CosineDecay(c.learning_rate, decay_steps=steps)
        decay = c.weight_decay or None
        if c.optimizer == "sgd":
            optimizer = keras.optimizers.SGD(rate, momentum=c.momentum, weight_decay=decay)
        else:
            optimizer = keras.optimizers.Adam(rate, weight_decay=decay)
        self.model.compile(optimizer)
        self.model.fit(
            images,
            labels,
            epochs=c.epochs,
            batch_size=c.batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[] if self.quiet else [EpochBar(c.epochs)],
        )

    def predict_members(self, images):
        chunk = 8192
        parts = []
        starts = range(0, len(images), chunk)
        for start in _bar(starts, self.quiet, "predicting", unit="chunk"):
            batch = images[start : start + chunk]
            parts.append(self.model.predict_members(batch, batch_size=self.config.eval_batch_size))
        return (
            np.concatenate(parts) if parts else np.empty((0, self.config.members, self.n_classes))
        )


def run_experiment(config: ExperimentConfig, out_dir, quiet: bool = False, trials=None):
    """Run (or resume) the trials of ``config`` into ``out_dir``; returns the results table.

    ``trials`` (indices below ``config.trials``) runs only those trials in
    this call, so a study can finish one trial of every method before it
    starts the next; by default every trial runs.
    """
    import pandas as pd

    out_dir = Path(out_dir)
    config_path = out_dir / "config.json"
    previous = _existing_run(config_path, config)
    split = load_data(config)
    pool, test = split.train, split.test
    sizes = active.schedule(
        config.schedule if isinstance(config.schedule, str) else list(config.schedule),
        config.budget,
        pool_size=len(pool),
    )
    mean, std = data.channel_statistics(pool.images)  # training images only
    started = _now()
    record = previous or {
        "config": config.to_dict(),
        "method": config.method,
        "schedule_sizes": sizes,
        "dataset": {
            "name": config.dataset,
            "provenance": split.train.provenance,
            "pool_size": len(pool),
            "test_size": len(test),
            "class_names": list(pool.class_names),
        },
        "environment": provenance.environment(),
        "sessions": [],
    }
    record["sessions"].append({"started": started, "finished": None, "wall_seconds": None})
    atomic_write(config_path, json.dumps(record, indent=2))
    session_start = time.perf_counter()

    shifted = shifts.shifted_sets(test.images, config.shift_samples, seed=config.seed)
    chosen_trials = range(config.trials) if trials is None else list(trials)
    if any(not 0 <= t < config.trials for t in chosen_trials):
        raise ValueError(f"trials must lie in [0, {config.trials}), got {list(chosen_trials)}")

    def shift_metrics(learner):
        if not config.shift_samples:
            return {}
        test_probs = learner.predict_members(test.images[: config.shift_samples])
        return {
            f"auroc_{kind}": metrics.separation_auroc(test_probs, learner.predict_members(images))
            for kind, images in shifted.items()
        }

    for trial in _bar(chosen_trials, quiet, "trials", unit="trial"):
        trial_seed = int(np.random.SeedSequence([config.seed, trial]).generate_state(1)[0])

        def make_learner(round_index, n_labelled, trial_seed=trial_seed):
            keras.utils.set_random_seed((trial_seed + 7919 * (round_index + 1)) % 2**31)
            return EnsembleLearner(
                config, pool.image_shape, len(pool.class_names), mean, std, quiet
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
                out_dir / "rounds" / f"trial{trial}_round{row['round']}.npz",
                lambda handle: np.savez_compressed(handle, **arrays),
            )

        active.run_trial(
            train_images=pool.images,
            train_labels=pool.labels,
            test_images=test.images,
            test_labels=test.labels,
            sizes=sizes,
            make_learner=make_learner,
            acquisition_name=config.acquisition,
            seed=trial_seed,
            checkpoint=out_dir / "checkpoints" / f"trial{trial}.json",
            on_round=save_round,
            evaluate_extra=shift_metrics,
            on_checkpoint=lambda rows: _write_results(out_dir, config),  # a table every round
            progress=None if quiet else _bar_writer,
        )

    record["sessions"][-1].update(
        finished=_now(), wall_seconds=round(time.perf_counter() - session_start, 3)
    )
    record["wall_seconds"] = round(sum(s["wall_seconds"] or 0 for s in record["sessions"]), 3)
    atomic_write(config_path, json.dumps(record, indent=2))
    return pd.read_csv(out_dir / "results.csv")


def _write_results(out_dir: Path, config: ExperimentConfig) -> None:
    import pandas as pd

    rows = []
    for checkpoint in sorted((out_dir / "checkpoints").glob("trial*.json")):
        trial = int(checkpoint.stem.removeprefix("trial"))
        for row in json.loads(checkpoint.read_text())["rows"]:
            rows.append({**row, "trial": trial})
    table = pd.DataFrame(rows)
    table["method"] = config.method
    table["dataset"] = config.dataset
    extra = [c for c in table.columns if c not in RESULT_COLUMNS and c not in ("method", "dataset")]
    columns = [*RESULT_COLUMNS, "method", "dataset", *extra]
    table = table[columns].sort_values(["trial", "round"])
    atomic_write(out_dir / "results.csv", table.to_csv(index=False))


def _existing_run(config_path: Path, config: ExperimentConfig) -> dict | None:
    if not config_path.exists():
        return None
    try:
        record = json.loads(config_path.read_text())
        stored = record["config"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{config_path} is unreadable; choose another output folder") from None
    if stored != config.to_dict():
        changed = sorted(
            k
            for k in set(stored) | set(config.to_dict())
            if stored.get(k) != config.to_dict().get(k)
        )
        raise ValueError(
            f"{config_path.parent} holds a run of another config "
            f"(differs in {', '.join(changed)}); choose another output folder"
        )
    return record


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
    """A tqdm bar over epochs that shows the latest loss and accuracy."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs
        self.bar = None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.epochs, desc="epochs", unit="epoch", leave=False)

    def on_epoch_end(self, epoch, logs=None):
        shown = {
            k: f"{v:.3g}" for k, v in (logs or {}).items() if k in ("loss", "ensemble_accuracy")
        }
        self.bar.set_postfix(shown)
        self.bar.update(1)

    def on_train_end(self, logs=None):
        self.bar.close()
