"""Which images should I label next? Active learning on your own folder of images.

``suggest(pool, labels_csv, k, out)`` (and ``dpe-tutorial query``) trains a
deep probabilistic ensemble on the images you have labelled, scores every
image you have not with the config's acquisition score, and writes into
``out``:

- ``suggestions.csv``: ``rank,path,score,predicted,probability``, rank 1 to
  label first (scores never increase down the table), with the ensemble's
  predicted class and its mean probability;
- ``suggestions.png``: a contact sheet of the top suggestions and their scores;
- ``model.keras``: the trained ensemble (``load_model(out)`` reads it back);
- ``config.json``: the config, the classes, what was read (with hashes) and
  provenance (versions, backend, device, git commit).

The pool is a folder (searched recursively) or a zip of ``.png``, ``.jpg`` or
``.jpeg`` images of any size and mode: each is converted to RGB and resized
to ``image_size`` x ``image_size`` pixels (default 32, stretched to a square,
not cropped), decoded once and cached like :func:`data.load_image_folder`
caches (under :func:`data.default_cache_dir`, keyed by the pool's listing or
the zip's sha256 and the size). The labels file is a CSV with the columns
``path,label``, paths relative to the pool root with ``/`` separators (for a
zip, as stored in it); the classes are its distinct labels (or ``classes``),
and every image not in it is unlabelled.

Every input is checked before anything is trained, and each problem raises a
ValueError (or FileNotFoundError) that names the file, line or field. An
``out`` folder that holds anything but an earlier query's files is refused;
an earlier query's files are replaced. Every file is written atomically.
The config fields about a simulated experiment (``dataset``, ``data_path``,
``train_subset``, ``test_subset``, ``schedule``, ``budget``, ``trials``,
``shift_samples``) are not used here.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import posixpath
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from . import acquisition, data, lock, provenance
from .data import imagefolders
from .files import atomic_write

DEFAULT_IMAGE_SIZE = 32
DEFAULT_PRESET = "few-labels"  # the few-labels recipe (results/mnist-recipe)
KIND = "dpe-tutorial query"
SUGGESTIONS = "suggestions.csv"
CONTACT_SHEET = "suggestions.png"
MODEL = "model.keras"
CONFIG = "config.json"
OUTPUT_FILES = (SUGGESTIONS, CONTACT_SHEET, MODEL, CONFIG)
COLUMNS = ("rank", "path", "score", "predicted", "probability")
CONTACT_SHEET_MAX = 40  # images on the contact sheet at most
POOL_CACHE_FORMAT = 1  # bumped whenever the cached arrays would change
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


# --------------------------------------------------------------------------- the pool


@dataclass(frozen=True, eq=False)
class Pool:
    """Every image of a pool: ``paths`` relative to its root, ``images`` uint8 (n, s, s, 3)."""

    root: Path
    paths: tuple[str, ...]
    images: np.ndarray
    provenance: str

    def index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.paths)}


class _Listing:
    """The image files of a pool folder or zip, without decoding them.

    The folder walk, the zip reading, the cache key and the decoding with its
    error messages are :mod:`data`'s image-folder code, reused.
    """

    def __init__(self, pool):
        self.root = Path(pool)
        self.source = imagefolders.open_tree(self.root, "pool", "images")
        with self.source:
            files, _ = self.source.entries()
        self.parts = sorted(parts for parts in files if imagefolders.is_image(parts))
        self.paths = tuple("/".join(parts) for parts in self.parts)
        if not self.paths:
            raise ValueError(
                f"pool {self.root} holds no images ({', '.join(data.IMAGE_EXTENSIONS)})"
            )

    def read(self, image_size: int, cache_dir=None) -> Pool:
        key = self.source.cache_key()
        where = f"pool {self.root.name} ({self.source.key_kind} {key})"
        cache = Path(cache_dir if cache_dir is not None else data.default_cache_dir()) / (
            f"query-pool-{key}-{image_size}px-v{POOL_CACHE_FORMAT}.npz"
        )
        images = _read_cache(cache, self.paths, image_size)
        if images is None:
            images = self._decode(image_size)
            _write_cache(cache, self.paths, images)
        return Pool(self.root, self.paths, images, f"{where}, {image_size}x{image_size} RGB")

    def _decode(self, image_size: int) -> np.ndarray:
        images = np.empty((len(self.parts), image_size, image_size, 3), dtype=np.uint8)
        with self.source:
            for i, parts in enumerate(self.parts):
                name = self.source.describe(parts)
                try:
                    blob = self.source.read(parts)
                except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                    raise ValueError(f"cannot read image {name}: {exc}") from exc
                pixels = imagefolders.decode_image(blob, name)  # names the file when it fails
                image = Image.fromarray(pixels).convert("RGB")
                if image.size != (image_size, image_size):
                    image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
                images[i] = np.asarray(image)
        return images


def read_pool(pool, image_size: int = DEFAULT_IMAGE_SIZE, cache_dir=None) -> Pool:
    """The images of a pool folder or zip, RGB, ``image_size`` square, decoded once and cached."""
    _check_image_size(image_size)
    return _Listing(pool).read(image_size, cache_dir)


def _read_cache(file: Path, paths: tuple[str, ...], image_size: int) -> np.ndarray | None:
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as stored:
            images = stored["images"]
            if tuple(str(p) for p in stored["paths"]) == paths and images.shape == (
                len(paths),
                image_size,
                image_size,
                3,
            ):
                return images
    except Exception:  # a corrupt cache is rebuilt, never fatal
        pass
    return None


def _write_cache(file: Path, paths: tuple[str, ...], images: np.ndarray) -> None:
    arrays = {"paths": np.array(paths, dtype=str), "images": images}
    try:
        atomic_write(file, lambda handle: np.savez(handle, **arrays))
    except OSError:  # no cache is slower, not wrong
        pass


def _check_image_size(image_size) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(f"image_size must be a whole number of pixels, got {image_size!r}")
    if not 8 <= image_size <= 512:
        raise ValueError(f"image_size must be between 8 and 512 pixels, got {image_size}")


# --------------------------------------------------------------------------- the labels


@dataclass(frozen=True)
class Labels:
    """The labelled paths in file order, their class indices and the class names."""

    paths: tuple[str, ...]
    labels: np.ndarray
    class_names: tuple[str, ...]


def read_labels(labels_csv, pool_paths, classes=None) -> Labels:
    """The ``path,label`` CSV checked against the pool's paths; ValueError names the line.

    The classes are the sorted distinct labels, or ``classes`` in its order;
    there must be at least 2, each with at least one labelled image.
    """
    file = Path(labels_csv)
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "does not exist"
        raise FileNotFoundError(f"labels file {file} {what}; give a CSV with columns path,label")
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"labels file {file} is not UTF-8 text; give a CSV") from None
    rows = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(rows, [])]
    if "path" not in header or "label" not in header:
        raise ValueError(
            f"labels file {file} must have the columns path,label in its first line; "
            f"it has {header}"
        )
    path_at, label_at = header.index("path"), header.index("label")
    in_pool = set(pool_paths)
    seen: dict[str, int] = {}
    paths, names = [], []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        cells = row + [""] * (len(header) - len(row))
        path, label = _normal_path(cells[path_at]), cells[label_at].strip()
        where = f"labels file {file} line {line}"
        if not path:
            raise ValueError(f"{where}: the path is empty")
        if path not in in_pool:
            raise ValueError(
                f"{where}: {path!r} is not an image in the pool (paths are relative to the "
                f"pool's root, such as {next(iter(sorted(in_pool)))!r})"
            )
        if path in seen:
            raise ValueError(
                f"{where}: {path!r} is labelled twice (lines {seen[path]} and {line}); keep one"
            )
        if not label:
            raise ValueError(f"{where}: the label of {path!r} is empty; give it a class")
        seen[path] = line
        paths.append(path)
        names.append(label)
    found = sorted(set(names))
    if classes is None:
        class_names = tuple(found)
    else:
        class_names = tuple(str(c).strip() for c in classes)
        if len(set(class_names)) != len(class_names) or not all(class_names):
            raise ValueError(f"classes must be distinct non-empty names, got {list(classes)}")
        unknown = sorted(set(found) - set(class_names))
        if unknown:
            raise ValueError(
                f"labels file {file} uses label(s) {unknown} that are not among the classes "
                f"{list(class_names)}"
            )
    if len(class_names) < 2:
        raise ValueError(
            f"labels file {file} has {len(class_names)} class(es) {list(class_names)}; "
            "label images of at least 2 classes"
        )
    empty = [name for name in class_names if name not in set(found)]
    if empty:
        raise ValueError(
            f"class(es) {empty} have no labelled image in {file}; label at least 1 image "
            "of each class"
        )
    index = {name: i for i, name in enumerate(class_names)}
    return Labels(tuple(paths), np.array([index[n] for n in names], np.int64), class_names)


def _normal_path(text: str) -> str:
    path = text.strip().replace("\\", "/")
    if not path:
        return ""
    return posixpath.normpath(path).removeprefix("./")


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
    """An ExperimentConfig from one, a preset name, a YAML path or None (the few-labels preset)."""
    from . import experiment

    if config is None:
        config = experiment.preset(DEFAULT_PRESET)
    elif isinstance(config, str) and config in experiment.PRESETS:
        config = experiment.preset(config)
    elif isinstance(config, (str, os.PathLike)):
        config = experiment.ExperimentConfig.from_yaml(config)
    elif isinstance(config, dict):
        config = experiment.ExperimentConfig.from_dict(config)
    elif not isinstance(config, experiment.ExperimentConfig):
        raise ValueError(
            "config must be an ExperimentConfig, a dict of fields, a preset name or a YAML "
            f"file, got {type(config).__name__}"
        )
    return config.with_overrides(list(overrides)) if overrides else config


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
) -> pd.DataFrame:
    """Train a DPE on the labelled images of ``pool`` and rank its unlabelled ones; see module.

    ``config`` is an :class:`~dpe_tutorial.experiment.ExperimentConfig`, a
    preset name, a YAML file or None (the ``few-labels`` preset). Returns the
    suggestions table that is also written to ``out/suggestions.csv``.
    """
    start = time.perf_counter()
    config = resolve_config(config)
    _check_image_size(image_size)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}")
    out = Path(out)
    listing = _Listing(pool)
    _check_out(out, listing.root)
    labels = read_labels(labels_csv, listing.paths, classes)
    n_unlabelled = len(listing.paths) - len(labels.paths)
    if k > n_unlabelled:
        raise ValueError(
            f"k ({k}) is larger than the unlabelled pool: {n_unlabelled} of the pool's "
            f"{len(listing.paths)} images are unlabelled"
        )
    images = listing.read(image_size, cache_dir)  # every image decoded: unreadable ones fail here
    out.mkdir(parents=True, exist_ok=True)
    with lock.hold(out):
        _check_out(out, listing.root)  # again, now that no other query can write here
        table, model = _train_and_rank(images, labels, k, config, quiet)
        _write_model(model, out / MODEL)
        atomic_write(out / SUGGESTIONS, table.to_csv(index=False, float_format="%.6g"))
        shown = table.head(CONTACT_SHEET_MAX)
        pixels = images.images[[images.index()[p] for p in shown["path"]]]
        _save_contact_sheet(pixels, shown, out / CONTACT_SHEET, len(table))
        record = _record(config, listing, images, labels, Path(labels_csv), k, image_size)
        record["seconds"] = round(time.perf_counter() - start, 1)
        atomic_write(out / CONFIG, json.dumps(record, indent=2, default=str) + "\n")
    return table


def _train_and_rank(pool: Pool, labels: Labels, k: int, config, quiet: bool):
    import keras

    from . import experiment

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
        }
    )
    return table, learner.model


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
    """
    import keras

    from . import ensemble  # noqa: F401  registers DeepProbabilisticEnsemble for loading

    out = Path(out)
    record = json.loads((out / CONFIG).read_text("utf-8"))
    if record.get("kind") != KIND:
        raise ValueError(f"{out / CONFIG} is not a query's config.json")
    return keras.models.load_model(out / MODEL), tuple(record["classes"])


def _record(config, listing: _Listing, pool: Pool, labels: Labels, labels_csv, k, image_size):
    counts = np.bincount(labels.labels, minlength=len(labels.class_names))
    return {
        "kind": KIND,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "pool": str(listing.root.resolve()),
        "pool_provenance": pool.provenance,
        "pool_images": len(pool.paths),
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


def _save_contact_sheet(images: np.ndarray, table: pd.DataFrame, path: Path, total: int) -> None:
    from matplotlib.figure import Figure

    from .plots import save_figure

    n = len(table)
    # four across: the sheet is the width of the book's text column, so its captions read
    # at about body-text size there and on a screen
    columns = min(4, n)
    rows = -(-n // columns)
    figure = Figure(figsize=(1.75 * columns, 2.2 * rows + 0.4), layout="constrained")
    for i, row in enumerate(table.itertuples(index=False)):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.imshow(images[i], interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(f"#{row.rank}  score {row.score:.3f}", fontsize=9)
        name = row.path if len(row.path) <= 22 else "…" + row.path[-21:]
        axes.set_xlabel(f"{name}\n{row.predicted} {row.probability:.0%}", fontsize=8.5)
    shown = f"top {n} of {total}" if n < total else f"all {n}"
    figure.suptitle(f"Label these next ({shown}): score; path, predicted class and its probability")
    save_figure(figure, path)
