"""Which images should I label next? Active learning on your own folder of images.

``suggest(pool, labels_csv, k, out)`` (and ``dpe-tutorial query``) trains a
deep probabilistic ensemble on the images you have labelled, scores every
image you have not with the config's acquisition score, picks ``k`` of them
by the config's ``selection`` (the default preset draws them by power
sampling; ``top_k`` takes the highest scores), and writes into ``out``:

- ``suggestions.csv``: ``rank,path,score,predicted,probability,label``, the
  picks in order of score (rank 1 the highest; scores never increase down the
  table), with the ensemble's
  predicted class and its mean probability, and an empty ``label`` column to
  fill in (``dpe-tutorial merge-labels`` adds the filled rows to the labels);
- ``suggestions.png``: a contact sheet of the top suggestions and their scores;
- ``predictions.csv`` (with ``predictions=True``): ``path,label,predicted,
  probability,score`` for every readable pool image, labelled ones included;
- ``model.keras``: the trained ensemble (``load_model(out)`` reads it back);
- ``config.json``: the config, the classes, what was read (with hashes), the
  held-out metrics (with ``eval_csv``) and provenance (versions, backend,
  device, git commit). It is written last: a folder without it holds an
  interrupted query's files.

The pool and what is read from it: :mod:`~dpe_tutorial.labelling.query_pool`; the
labels file and a held-out file (``eval_csv``, whose images are measured on,
never trained on): :mod:`~dpe_tutorial.labelling.query_labels`. Every input is checked
before a Keras backend is imported, and each problem raises a ValueError (or
FileNotFoundError) that names the file, line or field. An ``out`` folder that
holds anything but an earlier query's files is refused; an earlier query's
files are replaced. Every file is written atomically. The config fields about
a simulated experiment (``dataset``, ``data_path``, ``train_subset``,
``test_subset``, ``schedule``, ``budget``, ``trials``, ``shift_samples``) are
not used here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..method import acquisition
from ..running import data, lock, provenance, round_length, tracing
from ..running.files import atomic_write
from . import query_labels
from .contact_sheet import MOST_SHOWN, save_contact_sheet
from .query_labels import Labels, read_labels
from .query_pool import (  # noqa: F401  (Pool and read_pool: part of this module's API)
    DEFAULT_IMAGE_SIZE,
    Pool,
    check_image_size,
    check_unreadable,
    list_pool,
    read_pool,
    summary_line,
)

DEFAULT_PRESET = "few-labels"  # the few-labels recipe (results/mnist-recipe)
KIND = "dpe-tutorial query"
SUGGESTIONS = "suggestions.csv"
CONTACT_SHEET = "suggestions.png"
PREDICTIONS = "predictions.csv"
MODEL = "model.keras"
CONFIG = "config.json"
OUTPUT_FILES = (SUGGESTIONS, CONTACT_SHEET, PREDICTIONS, MODEL, CONFIG)
COLUMNS = ("rank", "path", "score", "predicted", "probability", "label")
PREDICTION_COLUMNS = ("path", "label", "predicted", "probability", "score")
UNUSED_FIELDS = (
    "dataset",
    "data_path",
    "train_subset",
    "test_subset",
    "schedule",
    "budget",
    "trials",
    "shift_samples",
)


# --------------------------------------------------------------------------- the output folder


def _check_out(out: Path, pool_root: Path) -> None:
    """Refuse an output folder that holds anything but an earlier query's files."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file; give a new or empty folder")
    pool_root = pool_root.resolve()
    if pool_root.is_dir() and out.resolve().is_relative_to(pool_root):
        raise ValueError(
            f"output folder {out} is inside the pool {pool_root}: its contact sheet would "
            "join the pool; give a folder outside it"
        )
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir() if not _ours_in_passing(p.name))
    foreign = [name for name in entries if name not in OUTPUT_FILES]
    if not foreign and CONFIG in entries:
        try:
            record = json.loads((out / CONFIG).read_text("utf-8"))
            if not isinstance(record, dict) or record.get("kind") != KIND:
                foreign = [CONFIG]
        except (OSError, ValueError):
            foreign = [CONFIG]
    if foreign:
        raise ValueError(
            f"output folder {out} holds {foreign[0]!r}, which is not a query's output; "
            "give a new or empty folder, or one an earlier query wrote"
        )


def _ours_in_passing(name: str) -> bool:
    """The lock, and what an interrupted write leaves (``.name.xxxx.partial``, ``.model-xxxx``)."""
    partial = name.startswith(".") and name.endswith(".partial")
    return name == lock.LOCK_NAME or partial or name.startswith(".model-")


# --------------------------------------------------------------------------- suggest


def resolve_config(config=None, overrides=()):
    """An ExperimentConfig from one, a preset name, a YAML path or None (the few-labels preset).

    Imports no Keras backend: a bad preset, file or field is answered at once.
    """
    from ..running import config as configs

    if config is None:
        config = configs.preset(DEFAULT_PRESET)
    elif isinstance(config, str) and config in configs.PRESETS:
        config = configs.preset(config)
    elif isinstance(config, str) and not _looks_like_a_file(config):
        configs.preset(config)  # raises: unknown preset NAME; choose one of ...
    elif isinstance(config, (str, os.PathLike)):
        config = configs.ExperimentConfig.from_yaml(config)
    elif isinstance(config, dict):
        config = configs.ExperimentConfig.from_dict(config)
    elif not isinstance(config, configs.ExperimentConfig):
        raise ValueError(
            "config must be an ExperimentConfig, a dict of fields, a preset name or a YAML "
            f"file, got {type(config).__name__}"
        )
    return config.with_overrides(list(overrides)) if overrides else config


def _looks_like_a_file(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml")) or "/" in name or os.path.exists(name)


def suggest(
    pool,
    labels_csv,
    k: int,
    out,
    config=None,
    *,
    image_size: int = DEFAULT_IMAGE_SIZE,
    classes=None,
    cache_dir=None,
    quiet: bool = True,
    skip_unreadable: bool = False,
    eval_csv=None,
    predictions: bool = False,
    report=None,
) -> pd.DataFrame:
    """Train a DPE on the labelled images of ``pool`` and rank its unlabelled ones; see module.

    ``config`` is an :class:`~dpe_tutorial.running.experiment.ExperimentConfig`, a
    preset name, a YAML file or None (the ``few-labels`` preset). Unreadable
    images stop the query, all named in one error, unless ``skip_unreadable``
    leaves them out. ``eval_csv`` (``path,label``, paths relative to its
    folder, outside the pool) is measured on; ``predictions`` writes
    ``predictions.csv``. ``report`` (such as ``print``) is given one line for
    what was read, one per skipped unreadable image and one for the held-out
    metrics. Returns the table also written to ``out/suggestions.csv``.
    """
    start = time.perf_counter()
    report = report or (lambda line: None)
    config = resolve_config(config)
    check_image_size(image_size)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    out = Path(out)
    listing = list_pool(pool)
    _check_out(out, listing.root)
    labels = read_labels(labels_csv, listing.paths, classes, listing)
    held_rows = None
    if eval_csv is not None:
        held_rows = query_labels.check_held_out(eval_csv, labels.class_names, listing.root)
    images = listing.read(image_size, cache_dir)  # every image decoded (or cached)
    check_unreadable(images.unreadable, f"pool {listing.root}", skip_unreadable)
    query_labels.check_labelled_readable(labels, images, labels_csv)
    n_unlabelled = len(images.paths) - len(labels.paths)
    if k > n_unlabelled:
        raise ValueError(
            f"k ({k}) is larger than the unlabelled pool: {n_unlabelled} of the pool's "
            f"{len(images.paths)} readable images are unlabelled"
        )
    held_out = None
    if held_rows is not None:
        held_out = query_labels.read_held_out(
            eval_csv, held_rows, labels.class_names, image_size, skip_unreadable
        )
    report(summary_line(listing, images, len(labels.paths)))
    sizing = (len(labels.paths), config.batch_size, config.epochs, config.steps)
    if (warning := round_length.few_steps_warning(*sizing)) is not None:
        report(warning)
    for _, reason in (*images.unreadable, *(held_out.unreadable if held_out else ())):
        report(f"skipped unreadable image: {reason}")
    out.mkdir(parents=True, exist_ok=True)
    with lock.hold(out):
        _check_out(out, listing.root)  # again, now that no other query can write here
        ranked = _train_and_rank(images, labels, k, config, quiet, out, held_out, predictions)
        # the record goes first and comes back last: an interrupted write leaves no record
        # that describes files of another query
        (out / CONFIG).unlink(missing_ok=True)
        _write_model(ranked.model, out / MODEL)
        table = ranked.table
        atomic_write(out / SUGGESTIONS, table.to_csv(index=False, float_format="%.6g"))
        shown = table.head(MOST_SHOWN)
        pixels = images.images[[images.index()[p] for p in shown["path"]]]
        save_contact_sheet(pixels, shown, out / CONTACT_SHEET, len(table))
        if ranked.predictions is not None:
            text = ranked.predictions.to_csv(index=False, float_format="%.6g")
            atomic_write(out / PREDICTIONS, text)
        else:  # an earlier query's, which would no longer match
            (out / PREDICTIONS).unlink(missing_ok=True)
        record = _record(config, listing, images, labels, Path(labels_csv), k, image_size)
        record["held_out"] = ranked.held_out
        record["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write(out / CONFIG, json.dumps(record, indent=2, default=str) + "\n")
    if ranked.held_out is not None:
        report(held_out_line(ranked.held_out))
    return table


def held_out_line(metrics: dict) -> str:
    return (
        f"held-out {metrics['file']} ({metrics['images']} images): accuracy "
        f"{metrics['accuracy']:.3f}, NLL {metrics['nll']:.3f}, ECE {metrics['ece']:.3f}"
    )


class _Ranked:
    def __init__(self, table, model, predictions=None, held_out=None):
        self.table, self.model = table, model
        self.predictions, self.held_out = predictions, held_out


def _train_and_rank(pool: Pool, labels: Labels, k, config, quiet, out, held_out, predictions):
    keras = tracing.import_keras()  # TensorFlow's import-time notices filtered
    tracing.silence_retracing_warning()

    from ..method import metrics
    from ..running import experiment

    index = pool.index()
    labelled = np.array([index[p] for p in labels.paths], dtype=np.int64)
    unlabelled = np.setdiff1d(np.arange(len(pool.paths)), labelled)
    train = pool.images[labelled]
    mean, std = data.channel_statistics(train)
    std = np.maximum(std, 1.0)  # a constant channel (grey images as RGB) would divide by 0
    keras.utils.set_random_seed(config.seed)
    learner = experiment.EnsembleLearner(
        config,
        pool.images.shape[1:],
        len(labels.class_names),
        mean,
        std,
        quiet,
        seed=config.seed,
        where="this query",
        diverged=f"nothing was written to {out}. Rerun the query with",
    )
    learner.fit(train, labels.labels)
    probs = learner.predict_members(pool.images[unlabelled])
    score = acquisition.get(config.acquisition)
    rng = np.random.default_rng(config.seed)
    scores = score(probs, rng=rng)
    selection = "top_k" if config.acquisition == "random" else config.selection  # as the loop
    picked = acquisition.choose(scores, k, selection, rng)
    chosen = picked[np.argsort(-scores[picked], kind="stable")]  # shown highest score first
    mean_probs = probs[chosen].mean(axis=1)
    predicted = mean_probs.argmax(axis=1)
    table = pd.DataFrame(
        {
            "rank": np.arange(1, k + 1),
            "path": [pool.paths[i] for i in unlabelled[chosen]],
            "score": scores[chosen],
            "predicted": [labels.class_names[c] for c in predicted],
            "probability": mean_probs[np.arange(k), predicted].astype(np.float64),
            "label": "",  # filled in by the person who labels
        }
    )
    ranked = _Ranked(table, learner.model)
    if predictions:
        labelled_probs = learner.predict_members(pool.images[labelled])
        ranked.predictions = _predictions(
            pool, labels, labelled, unlabelled, labelled_probs, probs, scores
        )
    if held_out is not None:
        measured = metrics.evaluate(learner.predict_members(held_out.images), held_out.labels)
        ranked.held_out = {
            "file": str(held_out.file),
            "images": len(held_out.paths),
            "accuracy": measured["ensemble_accuracy"],
            "nll": measured["nll"],
            "ece": measured["ece"],
            "skipped_unreadable": [path for path, _ in held_out.unreadable],
        }
    return ranked


def _predictions(pool, labels, labelled, unlabelled, labelled_probs, probs, scores):
    """Every readable pool image: its label if any, the prediction, its probability, its score."""
    order = np.concatenate([labelled, unlabelled])
    mean = np.concatenate([labelled_probs, probs]).mean(axis=1)
    table = pd.DataFrame(
        {
            "path": [pool.paths[i] for i in order],
            "label": [labels.class_names[c] for c in labels.labels] + [""] * len(unlabelled),
            "predicted": [labels.class_names[c] for c in mean.argmax(axis=1)],
            "probability": mean.max(axis=1).astype(np.float64),
            # the acquisition scores the candidates only: a labelled image has none
            "score": np.concatenate([np.full(len(labelled), np.nan), scores]),
        }
    )
    return table.sort_values("path", kind="stable").reset_index(drop=True)


def _write_model(model, path: Path) -> None:
    """Saved into a temporary folder (``model.save`` wants a ``.keras`` path), then moved."""
    with tempfile.TemporaryDirectory(prefix=".model-", dir=path.parent) as folder:
        temporary = Path(folder) / path.name
        model.save(temporary)
        atomic_write(path, temporary.read_bytes())


def load_model(out):
    """The ensemble a query saved in ``out`` and its class names: ``(model, class_names)``.

    ``model.predict_members(images)`` takes uint8 images of the query's
    ``image_size`` (``read_pool`` makes them) and returns member probabilities.
    TensorFlow's retracing warning, which loading models in a loop would
    bring, is dropped (:func:`tracing.silence_retracing_warning`).
    """
    keras = tracing.import_keras()
    tracing.silence_retracing_warning()

    from ..method import ensemble  # noqa: F401  registers DeepProbabilisticEnsemble for loading

    out = Path(out)
    record = json.loads((out / CONFIG).read_text("utf-8"))
    if record.get("kind") != KIND:
        raise ValueError(f"{out / CONFIG} is not a query's config.json")
    return keras.models.load_model(out / MODEL), tuple(record["classes"])


def _record(config, listing, pool: Pool, labels: Labels, labels_csv, k, image_size):
    counts = np.bincount(labels.labels, minlength=len(labels.class_names))
    return {
        "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pool": str(listing.root.resolve()),
        "pool_provenance": pool.provenance,
        "pool_images": len(pool.paths),
        "read": summary_line(listing, pool, len(labels.paths)),
        "skipped_unreadable": [path for path, _ in pool.unreadable],
        "labels_file": str(labels_csv.resolve()),
        "labels_sha256": hashlib.sha256(labels_csv.read_bytes()).hexdigest(),
        "classes": list(labels.class_names),
        "labelled_per_class": dict(zip(labels.class_names, counts.tolist(), strict=True)),
        "labelled": len(labels.paths),
        "unlabelled": len(pool.paths) - len(labels.paths),
        "k": int(k),
        "image_size": int(image_size),
        "config": config.to_dict(),
        "unused_config_fields": list(UNUSED_FIELDS),
        "files": {"suggestions": SUGGESTIONS, "contact_sheet": CONTACT_SHEET, "model": MODEL},
        "environment": provenance.environment(),
    }


def page_report(relative_to=None, width: int = 76):
    """A ``report`` for :func:`suggest` that prints for a page of text: each line wrapped to
    ``width`` columns, paths under ``relative_to`` shown relative to it (no build paths)."""
    import textwrap

    prefix = None if relative_to is None else f"{relative_to}{os.sep}"

    def report(line: str) -> None:
        print(textwrap.fill(line.replace(prefix, "") if prefix else line, width))

    return report
