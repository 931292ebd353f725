"""The built-in datasets: scikit-learn's digits, CIFAR-10 and MNIST.

Where CIFAR-10 comes from matters: the official pickles are the reference;
``../shared/data/cifar10-jpeg.zip`` is a JPEG re-encoding whose pixels differ
slightly (results from it must say "CIFAR-10 (JPEG copy)"). It is therefore
used only when named explicitly, never as a silent fallback. Keras is
imported inside the download branch of :func:`load_cifar10` and nowhere else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from .imagefolders import _damaged_zip_message, _looks_like_zip, load_image_folder
from .splits import Dataset, Split

# --------------------------------------------------------------------------- digits

DIGITS_TEST_SIZE = 360
DIGITS_SEED = 0


def load_digits() -> Split:
    """scikit-learn's handwritten digits: 8x8 grey images, 10 classes, offline.

    The 0..16 intensities are scaled to 0..255 (``round(v * 255 / 16)``), giving
    shape ``(n, 8, 8, 1)``. The split is stratified and seeded: 360 test
    images, the other 1,437 for training, each split in the original order.
    """
    import sklearn
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    train_index, test_index = train_test_split(
        np.arange(labels.size),
        test_size=DIGITS_TEST_SIZE,
        stratify=labels,
        random_state=DIGITS_SEED,
    )
    train_index, test_index = np.sort(train_index), np.sort(test_index)
    provenance = (
        f"scikit-learn {sklearn.__version__} digits ({labels.size} images, sha256 "
        f"{_array_digest(images, labels)[:16]}), stratified split with seed {DIGITS_SEED}: "
        f"{train_index.size} train / {test_index.size} test"
    )
    class_names = tuple(str(d) for d in range(10))
    return Split(
        Dataset(images[train_index], labels[train_index], class_names, provenance),
        Dataset(images[test_index], labels[test_index], class_names, provenance),
    )


def _array_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_BATCH = "test_batch"
CIFAR10_META = "batches.meta"
# md5 of the official pickles; a file not listed here is not verified (tests
# replace this dict to parse small fake batches).
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
# sha256 of ../shared/data/cifar10-jpeg.zip, the JPEG re-encoding
CIFAR10_JPEG_COPY_SHA256 = "05b4c8c8bf43c21250b5d4abc4621c4fed6837d691555b00c9215bfc6b363d11"
# where keras.datasets.cifar10 extracts the pickles, under $KERAS_HOME/datasets
# (Keras 2 and early Keras 3, then Keras >= 3.6)
KERAS_CIFAR10_DIRS = ("cifar-10-batches-py", "cifar-10-batches-py-target/cifar-10-batches-py")
_HOW_TO_POINT = (
    "Point at a local copy: DPE_DATA=/path/to/cifar-10-batches-py (the official pickles; "
    "cifar-10-python.tar.gz works too), or an image-folder zip such as "
    "DPE_DATA=../shared/data/cifar10-jpeg.zip (a JPEG re-encoding: label results "
    "'CIFAR-10 (JPEG copy)'); or pass path= to load_cifar10."
)


class DatasetNotFoundError(FileNotFoundError):
    """No source of a dataset worked; the message lists each place tried and why."""


def load_cifar10(path=None, cache_dir=None) -> Split:
    """CIFAR-10, 50,000 train and 10,000 test 32x32 RGB images, from the first source that works.

    1. ``path``, else ``$DPE_DATA``: a ``cifar-10-batches-py`` folder, the
       official ``cifar-10-python.tar.gz``, or an image-folder tree or zip
       (see :func:`load_image_folder`; ``cache_dir`` applies to it). An
       explicit source that fails raises: there is no fallback from it.
    2. The official pickles in the Keras cache, ``$KERAS_HOME/datasets``
       (``~/.keras/datasets`` when ``KERAS_HOME`` is unset).
    3. A download through ``keras.datasets.cifar10.load_data()``.

    The official pickles are checked against their md5 sums. When nothing
    works, :class:`DatasetNotFoundError` lists every place tried and why.
    """
    explicit, origin = path, "path argument"
    if explicit is None and os.environ.get("DPE_DATA"):
        explicit, origin = os.environ["DPE_DATA"], "DPE_DATA"
    if explicit is not None:
        return _load_cifar10_from(Path(explicit), origin, cache_dir)

    tried = ["path argument / DPE_DATA: neither given"]
    for folder in _keras_cifar10_folders():
        if not folder.is_dir():
            tried.append(f"Keras cache {folder}: does not exist")
            continue
        try:
            return _load_cifar10_pickles(folder)
        except (OSError, ValueError) as exc:
            tried.append(f"Keras cache {folder}: {exc}")
    try:
        (x_train, y_train), (x_test, y_test), keras_version = _download_cifar10()
        provenance = (
            f"CIFAR-10 official, through keras.datasets.cifar10.load_data() (keras {keras_version})"
        )
        return _split_from_keras_arrays(x_train, y_train, x_test, y_test, provenance)
    except Exception as exc:  # no network, no keras, a broken download: all mean "not here"
        tried.append(
            f"download through keras.datasets.cifar10.load_data(): {type(exc).__name__}: {exc}"
        )
    places = "\n".join(f"  {i}. {reason}" for i, reason in enumerate(tried, 1))
    raise DatasetNotFoundError(f"CIFAR-10 not found. Tried, in order:\n{places}\n{_HOW_TO_POINT}")


def _keras_cifar10_folders() -> list[Path]:
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home) if keras_home else Path.home() / ".keras"
    return [base / "datasets" / sub for sub in KERAS_CIFAR10_DIRS]


def _download_cifar10():
    """``keras.datasets.cifar10.load_data()`` and the Keras version; imports Keras here only."""
    import keras

    return (*keras.datasets.cifar10.load_data(), keras.__version__)


def _split_from_keras_arrays(x_train, y_train, x_test, y_test, provenance: str) -> Split:
    """Keras's arrays (channels last or first, labels of shape (n, 1)) as a Split."""

    def dataset(images, labels) -> Dataset:
        images = np.asarray(images)
        if images.ndim == 4 and images.shape[1] == 3 and images.shape[3] != 3:
            images = images.transpose(0, 2, 3, 1)  # channels_first
        return Dataset(images, np.asarray(labels).reshape(-1), CIFAR10_CLASSES, provenance)

    return Split(dataset(x_train, y_train), dataset(x_test, y_test))


def _load_cifar10_from(path: Path, origin: str, cache_dir) -> Split:
    """CIFAR-10 from an explicit path; every failure raises."""
    # the path as resolved from the working directory: a relative one is often typed elsewhere
    where = f"{path.resolve()} (from {origin}, as given: {path})"
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 path {where} does not exist. {_HOW_TO_POINT}")
    if path.is_dir():
        if any((path / name).exists() for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)):
            return _load_cifar10_pickles(path)
        try:
            split = load_image_folder(path, cache_dir)
        except ValueError as exc:
            raise ValueError(
                f"CIFAR-10 path {where} is not a cifar-10-batches-py folder (no data_batch_1) "
                f"and not a usable image folder: {exc}"
            ) from exc
    elif zipfile.is_zipfile(path):
        split = load_image_folder(path, cache_dir)
    elif tarfile.is_tarfile(path):
        return _load_cifar10_tar(path)
    elif _looks_like_zip(path):
        raise ValueError(_damaged_zip_message(path))
    else:
        raise ValueError(
            f"CIFAR-10 path {where} is none of: a cifar-10-batches-py folder, "
            f"cifar-10-python.tar.gz, an image-folder tree or zip. {_HOW_TO_POINT}"
        )
    return _as_cifar10(split, where)


def _as_cifar10(split: Split, where: str) -> Split:
    """Check that an image-folder split is CIFAR-10 and say so in its provenance."""
    if split.train.class_names != CIFAR10_CLASSES:
        raise ValueError(
            f"image folder {where} is not CIFAR-10: its classes are "
            f"{list(split.train.class_names)}, not {list(CIFAR10_CLASSES)}"
        )
    if split.train.image_shape != (32, 32, 3):
        raise ValueError(
            f"image folder {where} is not CIFAR-10: its images are {split.train.image_shape}, "
            "not (32, 32, 3)"
        )
    source = split.train.provenance
    if CIFAR10_JPEG_COPY_SHA256 in source:
        return _with_provenance(split, f"CIFAR-10 (JPEG copy): {source}")
    return _with_provenance(
        split, f"CIFAR-10 from an image folder, not the official pickles: {source}"
    )


def _with_provenance(split: Split, provenance: str) -> Split:
    return Split(
        dataclasses.replace(split.train, provenance=provenance),
        dataclasses.replace(split.test, provenance=provenance),
    )


def _load_cifar10_pickles(folder: Path) -> Split:
    """The official ``cifar-10-batches-py`` folder."""
    names = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"CIFAR-10 folder {folder} lacks {missing}")
    blobs = {name: (folder / name).read_bytes() for name in names}
    if (folder / CIFAR10_META).is_file():
        blobs[CIFAR10_META] = (folder / CIFAR10_META).read_bytes()
    return _split_from_pickles(blobs, str(folder))


def _load_cifar10_tar(archive: Path) -> Split:
    """The official ``cifar-10-python.tar.gz``, read without extracting it."""
    wanted = {*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH, CIFAR10_META}
    blobs: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and name not in blobs:
                    blobs[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read CIFAR-10 archive {archive}: {exc}") from exc
    missing = sorted(wanted - {CIFAR10_META} - set(blobs))
    if missing:
        raise ValueError(f"CIFAR-10 archive {archive} lacks {missing}")
    return _split_from_pickles(blobs, f"{archive.name}")


def _split_from_pickles(blobs: dict[str, bytes], where: str) -> Split:
    unverified = []
    for name in (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH):
        expected = CIFAR10_MD5.get(name)
        if expected is None:
            unverified.append(name)
            continue
        actual = hashlib.md5(blobs[name]).hexdigest()
        if actual != expected:
            raise ValueError(
                f"CIFAR-10 file {name} in {where} has md5 {actual}, expected {expected}: "
                "the file is corrupt or not the official one"
            )
    class_names = CIFAR10_CLASSES
    if CIFAR10_META in blobs:
        meta = _unpickle(blobs[CIFAR10_META], f"{CIFAR10_META} in {where}")
        try:
            class_names = tuple(
                n.decode() if isinstance(n, bytes) else n for n in meta[b"label_names"]
            )
        except (KeyError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{CIFAR10_META} in {where} has no usable label_names") from exc
    train = [_read_batch(blobs[name], f"{name} in {where}") for name in CIFAR10_TRAIN_BATCHES]
    test_images, test_labels = _read_batch(
        blobs[CIFAR10_TEST_BATCH], f"{CIFAR10_TEST_BATCH} in {where}"
    )
    train_images = np.empty((sum(len(b[1]) for b in train), 32, 32, 3), dtype=np.uint8)
    start = 0
    for images, _ in train:
        train_images[start : start + len(images)] = images
        start += len(images)
    train_labels = np.concatenate([labels for _, labels in train])
    check = "md5 verified" if not unverified else f"md5 NOT verified for {unverified}"
    provenance = f"CIFAR-10 official pickles from {where} ({check})"
    return Split(
        Dataset(train_images, train_labels, class_names, provenance),
        Dataset(np.ascontiguousarray(test_images), test_labels, class_names, provenance),
    )


def _read_batch(blob: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch: images as a (n, 32, 32, 3) view of the CHW rows, and int64 labels."""
    batch = _unpickle(blob, name)
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a CIFAR-10 batch (b'data' and b'labels')") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{name}: b'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{name}: {labels.size} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a path may point at any file."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _unpickle(blob: bytes, name: str):
    try:
        return _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"cannot unpickle {name}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- MNIST

MNIST_CLASSES = tuple(str(d) for d in range(10))
MNIST_SIZES = {"train": 60000, "test": 10000}
# sha256 of ../shared/data/mnist-png.zip: the official pixels as lossless PNG
MNIST_PNG_COPY_SHA256 = "5afe0c977df2b559df27c29d3fc64653192fc85d35dbc9f4a3d4b398c7b0e287"


def load_mnist(path=None, cache_dir=None) -> Split:
    """MNIST, 60,000 train and 10,000 test 28x28 grey digits, from an image-folder tree or zip.

    ``path`` (else ``$DPE_MNIST``) is a ``train/<digit>/<index>.png``,
    ``test/<digit>/<index>.png`` tree, such as ``../shared/data/mnist-png.zip``
    (the official pixels as PNG). It is checked to hold the ten digits, 28x28
    grey images and the official 60,000 / 10,000 split; decoding is cached as
    for :func:`load_image_folder`.
    """
    if path is None:
        path = os.environ.get("DPE_MNIST")
    if not path:
        raise DatasetNotFoundError(
            "MNIST needs a path: give data_path (or set DPE_MNIST) to an image-folder tree or "
            "zip of train/<digit>/<index>.png and test/<digit>/<index>.png, such as "
            "../shared/data/mnist-png.zip"
        )
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"MNIST path {path.resolve()} does not exist")
    split = load_image_folder(path, cache_dir)
    problem = _mnist_problem(split)
    if problem:
        raise ValueError(f"image folder {path} is not MNIST: {problem}")
    source = split.train.provenance
    if MNIST_PNG_COPY_SHA256 in source:
        return _with_provenance(split, f"MNIST (official pixels, PNG copy): {source}")
    return _with_provenance(
        split, f"MNIST from an image folder, not checked against the official files: {source}"
    )


def _mnist_problem(split: Split) -> str | None:
    if split.train.class_names != MNIST_CLASSES:
        return f"its classes are {list(split.train.class_names)}, not the digits 0-9"
    if split.train.image_shape != (28, 28, 1):
        return f"its images are {split.train.image_shape}, not (28, 28, 1)"
    sizes = {"train": len(split.train.labels), "test": len(split.test.labels)}
    if sizes != MNIST_SIZES:
        return f"it holds {sizes} images, not the official {MNIST_SIZES}"
    return None
