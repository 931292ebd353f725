"""What defines a run: :class:`ExperimentConfig`, its validation, and the named presets.

A config is built with :meth:`ExperimentConfig.from_dict` (or ``from_yaml``,
``with_overrides``, :func:`preset`, :func:`configure`) and is checked whole
on construction: every field against its rule, with a message that names the
field, what it must be and what it got. Running a config is
:mod:`dpe_tutorial.running.experiment`'s job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from ..method import acquisition, checks, choices
from ..method.choices import DEFAULT_BETA, DEFAULT_KL_FORM, elbo_multiple
from . import active, data
from .presets import FEW_LABELS_MEMBERS, FEW_LABELS_RECIPE, PRESETS  # noqa: F401  (re-exported)


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
    kl_form: str = DEFAULT_KL_FORM
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
    # true, false or "auto" (bfloat16 where this machine computes it faster:
    # dpe_tutorial.running.precision)
    mixed_precision: bool | str = False
    trials: int = 1
    seed: int = 0
    eval_batch_size: int = 512
    shift_samples: int = 1000
    name: str = ""
    # The fields below came with the MNIST study; their defaults are the behaviour
    # before them, so that config.json files written earlier still mean what they did
    # (run_record._LATER_FIELDS fills them in when such a run is resumed).
    steps: int | None = None
    initial_labels: str = "random"
    pool_subset: int | None = None
    selection: str = "top_k"
    passes: int = 1
    member_predictions: bool = False
    # how the ensemble is spread over the devices: none (one device), data (every
    # device holds all members and trains on its share of each batch) or members
    # (each device holds and trains its own members; layout grouped). data and
    # members need KERAS_BACKEND=jax; see dpe_tutorial.method.distribution. Not part of a
    # run's folder name; a config.json written before this field means none.
    distribution: str = "none"

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
        return _method(self, folder=False)


INITIAL_LABELS = ("random", "balanced")
# members whose dropout can stay on at prediction (MC dropout)
DROPOUT_MEMBERS = ("gal_cnn",)


def _one_of(names) -> str:
    return " | ".join(names)


# What each field means and which values it takes: the one place that says it
# (``dpe-tutorial fields`` prints it; a test checks every field is here).
FIELD_DOCS: dict[str, tuple[str, str]] = {
    "dataset": (_one_of(data.DATASET_NAMES), "the images to learn from"),
    "data_path": (
        "a path, or null",
        "where the dataset is (required for image_folder; for mnist, or $DPE_MNIST)",
    ),
    "train_subset": ("whole >= 1, or null", "use only this many training images (null: all)"),
    "test_subset": ("whole >= 1, or null", "use only this many test images (null: all)"),
    "schedule": (
        "linear-K | exponential-K | [n1, n2, ...]",
        "the labelled-set size of each round (K rounds, ending at budget)",
    ),
    "budget": ("whole >= 1", "labelled images after the last round"),
    "members": (
        "whole >= 1 (>= 2 unless beta is 0; >= 4 for inclusive and paper)",
        "networks in the ensemble (E)",
    ),
    "member": (_one_of(choices.BUILTIN_MEMBERS), "the architecture of each member"),
    "width": ("whole >= 1", "channels (or units) of each member's first layer"),
    "layout": (_one_of(choices.LAYOUTS), "members side by side, or fused by grouped convs"),
    "beta": (
        'number >= 0 | "elbo" | "elbo*F"',
        "weight of the KL penalty: 0 is a plain ensemble, elbo is E / N",
    ),
    "kl_form": (_one_of(choices.FORMS), "which KL divergence penalises the members' spread"),
    "regularize_batchnorm": ("true | false", "also pull batch-norm scales/offsets to a prior"),
    "acquisition": (_one_of(acquisition.names()), "the score that picks the next labels"),
    "epochs": ("whole >= 1", "training epochs per round"),
    "batch_size": ("whole >= 1", "training batch size"),
    "optimizer": (_one_of(choices.OPTIMIZERS), "the optimizer"),
    "learning_rate": ("number > 0", "the (initial) learning rate"),
    "momentum": ("number >= 0", "SGD momentum"),
    "weight_decay": ("number >= 0", "decoupled weight decay (0: none)"),
    "lr_schedule": (_one_of(choices.LR_SCHEDULES), "learning rate over a round's training"),
    "augment": ("true | false", "pad-and-crop and flip the training images at random"),
    "mixed_precision": (
        "true | false | auto",
        "compute in bfloat16, weights and loss float32; auto: where the GPU or CPU does it faster",
    ),
    "trials": ("whole >= 1", "independent repeats, each with its own seed"),
    "seed": ("whole >= 0", "the seed; each trial derives its own from it"),
    "eval_batch_size": ("whole >= 1", "batch size when predicting"),
    "shift_samples": (
        "whole >= 0",
        "test images per shifted copy (noise, contrast, shuffle); 0 skips",
    ),
    "distribution": (
        _one_of(choices.DISTRIBUTIONS),
        "one device; data parallel; or members sharded over the devices (JAX)",
    ),
    "name": ("text", "a label for the run and its folder (presets set their own)"),
    "steps": (
        "whole >= 1, or null",
        "optimizer steps per round, rounded up to whole epochs (null: 'epochs' epochs)",
    ),
    "initial_labels": (_one_of(INITIAL_LABELS), "how the first labelled set is drawn"),
    "pool_subset": (
        "whole >= 1, or null",
        "score only this many unlabelled images, drawn afresh each round (null: all)",
    ),
    "selection": (
        _one_of(acquisition.SELECTIONS),
        "take the top scores, or sample in proportion to the score (power sampling)",
    ),
    "passes": (
        "whole >= 1 (> 1 needs member gal_cnn)",
        "stochastic forward passes per member: > 1 keeps dropout on (MC dropout)",
    ),
    "member_predictions": ("true | false", "store every member's test predictions each round"),
}


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


def preset(name: str) -> ExperimentConfig:
    try:
        return ExperimentConfig.from_dict(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


# shown even where the presets agree: they set neither, and they define the method
_ALWAYS_SHOWN = ("beta", "kl_form", "acquisition")


def preset_differences() -> dict[str, dict[str, str]]:
    """``{field: {preset: value}}`` for the fields where the presets differ, and beta and kl_form.

    Values are written as ``--set`` and YAML take them (:func:`show_value`).
    """
    configs = {name: preset(name).to_dict() for name in PRESETS}
    first = next(iter(configs.values()))
    return {
        field: {name: show_value(c[field]) for name, c in configs.items()}
        for field in first
        if field != "name"
        and (field in _ALWAYS_SHOWN or any(c[field] != first[field] for c in configs.values()))
    }


def show_value(value) -> str:
    """A config value as ``--set`` and YAML write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, str):
        return value if value else '""'
    return f"{value:g}" if isinstance(value, float) else str(value)


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
    return _method(config, folder=True)


def _method(config: ExperimentConfig, folder: bool) -> str:
    """The method of a run: its plot label, or (``folder``) its folder name.

    Both name the model (a plain ensemble, or a DPE with its KL form and
    beta) and the acquisition score; the label calls random acquisition just
    "random", whatever it trains.
    """
    model = _model(config, folder)
    power = config.selection == "power" and config.acquisition != "random"
    if folder:
        return f"{model}-{config.acquisition}" + ("-power" if power else "")
    if config.acquisition == "random":
        return "random"
    return f"{model} ({config.acquisition}{', power' if power else ''})"


def model_label(config: ExperimentConfig) -> str:
    """What a run trains, for labels: ``MC dropout``, ``plain ensemble`` or
    ``DPE paper, beta=elbo*0.1`` (tells apart runs that :attr:`ExperimentConfig.method`
    calls just "random")."""
    return _model(config, folder=False)


def _model(config: ExperimentConfig, folder: bool) -> str:
    if config.passes > 1 and config.members == 1:
        return "mc-dropout" if folder else "MC dropout"
    if config.beta == 0:
        # the folder keeps its old name, so that committed runs still resume
        return "ensemble" if folder else "plain ensemble"
    if folder:
        return f"dpe-{config.kl_form}-{beta_label(config.beta).replace('*', '-x')}"
    return f"DPE {config.kl_form}, beta={beta_label(config.beta)}"


def schedule_sizes(config: ExperimentConfig) -> list[int]:
    """The labelled-set sizes of the config's schedule."""
    schedule = config.schedule if isinstance(config.schedule, str) else list(config.schedule)
    return active.schedule(schedule, config.budget)


def _validate(config: ExperimentConfig) -> None:
    """Every field against its rule; the rules are the library's, named as config fields."""
    c = config

    def field(name: str) -> str:
        return f"config field {name!r}"

    def whole(name, minimum=1, optional=False):
        value = checks.whole_number(field(name), getattr(c, name), minimum, optional)
        object.__setattr__(c, name, value)  # a numpy integer becomes an int: config.json is JSON

    def number(name, minimum=0.0, strict=False):
        checks.finite_number(field(name), getattr(c, name), minimum, strict)

    def choice(name, allowed):
        checks.one_of(field(name), getattr(c, name), allowed)

    data.check_source(
        c.dataset, c.data_path, dataset=field("dataset"), path_name=field("data_path")
    )
    if c.data_path is not None and not isinstance(c.data_path, str):  # config.json stores text
        raise ValueError(f"{field('data_path')} must be a path or null, got {c.data_path!r}")
    whole("train_subset", optional=True)
    whole("test_subset", optional=True)
    whole("budget")
    try:
        schedule_sizes(c)
    except ValueError as error:
        raise ValueError(
            f"{field('schedule')} must be a valid schedule for budget {c.budget} ({error}), "
            f"got {c.schedule!r}"
        ) from None
    elbo_multiple(c.beta, field("beta"))
    choices.check_form(c.kl_form, field("kl_form"))
    members = choices.check_members(c.members, c.beta, field("members"), c.kl_form)
    object.__setattr__(c, "members", members)
    choice("member", choices.member_names())
    whole("width")
    choice("layout", choices.LAYOUTS)
    checks.flag(field("regularize_batchnorm"), c.regularize_batchnorm)
    choice("acquisition", acquisition.names())
    whole("epochs")
    whole("batch_size")
    choice("optimizer", choices.OPTIMIZERS)
    number("learning_rate", strict=True)
    number("momentum")
    number("weight_decay")
    choice("lr_schedule", choices.LR_SCHEDULES)
    checks.flag(field("augment"), c.augment)
    if c.mixed_precision != "auto":
        checks.flag(field("mixed_precision"), c.mixed_precision)
    whole("trials")
    whole("seed", minimum=0)
    whole("eval_batch_size")
    whole("shift_samples", minimum=0)
    if not isinstance(c.name, str):
        raise ValueError(f"{field('name')} must be a string, got {c.name!r}")
    whole("steps", optional=True)
    choice("initial_labels", INITIAL_LABELS)
    whole("pool_subset", optional=True)
    choice("selection", acquisition.SELECTIONS)
    whole("passes")
    if c.passes > 1 and c.member not in DROPOUT_MEMBERS:
        raise ValueError(
            f"{field('passes')} > 1 draws Monte Carlo dropout passes, which needs a member "
            f"with dropout ({_one_of(DROPOUT_MEMBERS)}), got member {c.member!r}"
        )
    checks.flag(field("member_predictions"), c.member_predictions)
    choice("distribution", choices.DISTRIBUTIONS)
    if c.distribution == "members" and c.layout != "grouped":
        raise ValueError(
            f"{field('distribution')} 'members' shards the member axis of the grouped layout, "
            f"which the {c.layout!r} layout does not have: set layout=grouped, or "
            "distribution=data"
        )
    # the backend and the device count are the running process's: checked when a run starts
