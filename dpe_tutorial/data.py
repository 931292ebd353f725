"""Datasets as ``uint8`` images and ``int64`` labels, and where they come from.

Every loader returns a :class:`Split` of two :class:`Dataset` objects. Images
stay ``uint8`` with shape ``(n, height, width, channels)`` until a batch is
made: the CIFAR-10 pool as float32 would be four times larger. Each dataset
carries a ``provenance`` string, so that a results table can say exactly which
data it was computed on.

============================== ================================================
``load_digits()``              scikit-learn's 8x8 digits: they ship with
                               scikit-learn, so smoke runs work anywhere, offline
``load_cifar10(path)``         CIFAR-10 from a path (or ``$DPE_DATA``), else the
                               Keras cache, else a download through Keras
``load_image_folder(path)``    your own images: a ``split/class/image`` tree in
                               a folder or a zip, decoded once and then cached
``load_dataset(name, path)``   any of these by name, for configs
``channel_statistics(images)`` per-channel mean and std for normalisation:
                               pass the *training* images only
============================== ================================================

The module needs numpy, Pillow and scikit-learn only. Keras is imported inside
the download branch of :func:`load_cifar10` and nowhere else, so importing
this module is cheap and works with every Keras backend, or none.

Where CIFAR-10 comes from matters: the official pickles are the reference;
``../shared/data/cifar10-jpeg.zip`` is a JPEG re-encoding whose pixels differ
slightly (results from it must say "CIFAR-10 (JPEG copy)"). It is therefore
used only when named explicitly, never as a silent fallback.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_write

# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images and labels of one split, with the names of the classes.

    ``images`` is ``uint8`` with shape ``(n, height, width, channels)`` and is
    stored C-contiguous (a non-contiguous array is copied once); ``labels`` is
    ``int64`` with shape ``(n,)`` (any integer dtype is converted) and values
    in ``[0, len(class_names))``. ``provenance`` says which source, which
    files and which hash the data came from.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    provenance: str

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 pixels (0..255), got dtype {images.dtype}; "
                "keep images as uint8 and convert per batch"
            )
        if images.ndim != 4:
            raise ValueError(
                f"images must have shape (n, height, width, channels), got {images.ndim} "
                f"dimension(s) with shape {images.shape}"
            )
        if min(images.shape[1:]) < 1:
            raise ValueError(f"images must have a non-empty image shape, got {images.shape}")
        labels = np.asarray(self.labels)
        if labels.size == 0 and labels.dtype == np.float64:
            labels = labels.astype(np.int64)  # np.asarray([]) is float64
        if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape (n,) = ({images.shape[0]},) to match the images, "
                f"got {labels.shape}"
            )
        if isinstance(self.class_names, str):
            raise ValueError(f"class_names must be a sequence of names, got {self.class_names!r}")
        class_names = tuple(self.class_names)
        if not class_names or not all(isinstance(c, str) and c for c in class_names):
            raise ValueError(f"class_names must be non-empty strings, got {class_names!r}")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be unique, got {class_names!r}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
            bad = labels[(labels < 0) | (labels >= len(class_names))]
            raise ValueError(
                f"labels must be in [0, {len(class_names)}) for {len(class_names)} classes; "
                f"{bad.size} are not (first: {int(bad[0])})"
            )
        if not isinstance(self.provenance, str):
            raise ValueError(f"provenance must be a string, got {type(self.provenance).__name__}")
        object.__setattr__(self, "images", np.ascontiguousarray(images))
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "class_names", class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(n={len(self)}, image_shape={self.image_shape}, "
            f"classes={len(self.class_names)}, provenance={self.provenance!r})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of every image."""
        height, width, channels = self.images.shape[1:]
        return int(height), int(width), int(channels)

    def subset(self, indices) -> Dataset:
        """The samples at ``indices`` (integers in ``[0, n)``, or a boolean mask of length n).

        The images are copied; class names and provenance are kept.
        Out-of-range indices raise ``IndexError``.
        """
        indices = np.asarray(indices)
        n = len(self)
        if indices.dtype == np.bool_:
            if indices.shape != (n,):
                raise ValueError(f"a boolean mask must have shape ({n},), got {indices.shape}")
            indices = np.flatnonzero(indices)
        elif indices.size == 0:
            indices = np.empty(0, dtype=np.int64)
        elif not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(f"indices must be integers or a boolean mask, got {indices.dtype}")
        if indices.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices[(indices < 0) | (indices >= n)]
            raise IndexError(
                f"indices must be in [0, {n}); {bad.size} are not (first: {int(bad[0])})"
            )
        return Dataset(
            self.images[indices], self.labels[indices], self.class_names, self.provenance
        )


@dataclass(frozen=True, eq=False)
class Split:
    """A training and a test :class:`Dataset` with the same classes and image shape."""

    train: Dataset
    test: Dataset

    def __post_init__(self) -> None:
        for name in ("train", "test"):
            if not isinstance(getattr(self, name), Dataset):
                raise ValueError(f"{name} must be a Dataset, got {type(getattr(self, name))}")
        if self.train.class_names != self.test.class_names:
            raise ValueError(
                f"train and test must have the same class_names, got {self.train.class_names} "
                f"and {self.test.class_names}"
            )
        if self.train.image_shape != self.test.image_shape:
            raise ValueError(
                f"train and test must have the same image shape, got {self.train.image_shape} "
                f"and {self.test.image_shape}"
            )


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


def fingerprint(split: Split) -> str:
    """``sha256:<hex>`` of the pool and test images and labels (their bytes, shapes and dtypes).

    Two splits with the same fingerprint hold the same samples in the same
    order, whatever path or provenance they were loaded from: a results
    folder stores it so that a rerun on other data can be refused.
    """
    digest = hashlib.sha256(b"dpe_tutorial split fingerprint v1\n")
    for dataset in (split.train, split.test):
        for array in (dataset.images, dataset.labels):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str} {array.shape}\n".encode())
            digest.update(array.reshape(-1).view(np.uint8))  # the bytes, without a copy
    return f"sha256:{digest.hexdigest()}"


# --------------------------------------------------------------------------- image folders

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
# Pillow modes kept as one grey channel; every other supported mode becomes RGB
# (alpha is dropped, palettes are expanded).
_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
# Bumped whenever the decoded arrays would change, so old cache files are not reused.
CACHE_FORMAT = 1
HASH_BLOCK_BYTES = 1 << 20

Parts = tuple[str, ...]


def default_cache_dir() -> Path:
    """``$DPE_CACHE`` if set, else ``~/.cache/dpe_tutorial``."""
    configured = os.environ.get("DPE_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "dpe_tutorial"


def load_image_folder(path, cache_dir=None) -> Split:
    """Images from a ``split/class/image`` tree in a folder or a ``.zip``.

    The splits must be exactly ``train`` and ``test`` (a zip may hold them at
    its root or under one top-level folder); class names are the sorted class
    folders of ``train``, and ``test`` must have the same ones. Images are
    ``.png``, ``.jpg`` or ``.jpeg`` files (any case); other files, hidden
    files and ``__MACOSX`` folders are ignored. Images are read in sorted
    order per class and converted to RGB, or kept as one channel when all of
    them are greyscale; all must have the same size.

    Decoded arrays are cached under ``cache_dir`` (default
    :func:`default_cache_dir`) as an ``.npz`` named by the sha256 of the zip
    (for a folder: of its image files' paths, sizes and modification times),
    so a second load only hashes and reads that file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image folder {path} does not exist")
    if path.is_dir():
        source: _TreeSource = _FolderSource(path)
    elif zipfile.is_zipfile(path):
        source = _ZipSource(path)
    elif _looks_like_zip(path):
        raise ValueError(_damaged_zip_message(path))
    else:
        raise ValueError(f"{path} is neither a folder nor a zip file of a split/class/image tree")
    key = source.cache_key()
    provenance = f"image folder {path.name} ({source.key_kind} {key})"
    cache_file = Path(cache_dir if cache_dir is not None else default_cache_dir()) / (
        f"image-folder-{key}-v{CACHE_FORMAT}.npz"
    )
    cached = _read_cache(cache_file, provenance)
    if cached is not None:
        return cached
    with source:
        split = _decode_tree(source, provenance)
    _write_cache(cache_file, split)
    return split


def _looks_like_zip(path: Path) -> bool:
    """A ``.zip`` name or a zip's magic bytes: a file meant as a zip, if not a readable one."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        with open(path, "rb") as file:
            return file.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def _damaged_zip_message(path: Path) -> str:
    # zipfile finds a zip by its central directory, at the end: a cut-off copy has none
    return (
        f"zip file {path} is damaged or truncated (its central directory is missing or "
        "unreadable); copy or download it again"
    )


class _TreeSource:
    """The files of an image tree: their paths as tuples of parts, and their bytes."""

    key_kind = "sha256"

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> _TreeSource:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def entries(self) -> tuple[list[Parts], set[Parts]]:
        """(files, folders), relative to the root, hidden entries left out."""
        raise NotImplementedError

    def cache_key(self) -> str:
        raise NotImplementedError

    def read(self, parts: Parts) -> bytes:
        raise NotImplementedError

    def describe(self, parts: Parts) -> str:
        raise NotImplementedError


def _ignored(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _is_image(parts: Parts) -> bool:
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


class _FolderSource(_TreeSource):
    key_kind = "listing sha256"

    def __init__(self, path: Path):
        super().__init__(path)
        self._files: list[Parts] = []
        self._folders: set[Parts] = set()
        for root, folders, files in os.walk(path):
            folders[:] = sorted(f for f in folders if not _ignored(f))
            rel = Path(root).relative_to(path).parts
            self._folders.update((*rel, f) for f in folders)
            self._files.extend((*rel, f) for f in sorted(files) if not _ignored(f))

    def entries(self) -> tuple[list[Parts], set[Parts]]:
        return self._files, self._folders

    def cache_key(self) -> str:
        # Content hashing a folder would read every image; paths, sizes and
        # modification times change whenever an image is added, removed or edited.
        digest = hashlib.sha256(b"image folder listing\n")
        for parts in sorted(self._folders):
            digest.update(f"D {'/'.join(parts)}\n".encode())
        for parts in sorted(p for p in self._files if _is_image(p)):
            try:
                stat = self.path.joinpath(*parts).stat()
            except OSError as exc:  # e.g. a dangling link
                raise ValueError(f"cannot read image {self.describe(parts)}: {exc}") from exc
            digest.update(f"F {'/'.join(parts)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def read(self, parts: Parts) -> bytes:
        return self.path.joinpath(*parts).read_bytes()

    def describe(self, parts: Parts) -> str:
        return str(self.path.joinpath(*parts))


class _ZipSource(_TreeSource):
    def __init__(self, path: Path):
        super().__init__(path)
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[Parts, str] = {}

    def __enter__(self) -> _ZipSource:
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"cannot read zip file {self.path}: {exc}") from exc
        return self

    def __exit__(self, *exc) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def entries(self) -> tuple[list[Parts], set[Parts]]:
        assert self._zip is not None, "use the source as a context manager"
        files: list[Parts] = []
        folders: set[Parts] = set()
        for info in self._zip.infolist():
            parts = tuple(p for p in info.filename.split("/") if p)
            if not parts or any(_ignored(p) for p in parts):
                continue
            if info.is_dir():
                folders.add(parts)
            else:
                files.append(parts)
                self._names[parts] = info.filename
                folders.update(parts[:i] for i in range(1, len(parts)))
        return files, folders

    def cache_key(self) -> str:
        return file_sha256(self.path)

    def read(self, parts: Parts) -> bytes:
        assert self._zip is not None, "use the source as a context manager"
        return self._zip.read(self._names[parts])

    def describe(self, parts: Parts) -> str:
        return f"{'/'.join(parts)} in {self.path}"


def file_sha256(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _layout(source: _TreeSource) -> tuple[tuple[str, ...], dict[str, list[list[Parts]]]]:
    """Class names and, per split, the sorted image paths of each class."""
    files, folders = source.entries()
    where = source.path
    top = {parts[0] for parts in folders}
    prefix: Parts = ()
    root_images = any(len(f) == 1 and _is_image(f) for f in files)
    if len(top) == 1 and not top & set(SPLITS) and not root_images:
        prefix = (next(iter(top)),)
        files = [f[1:] for f in files if len(f) > 1]
        folders = {d[1:] for d in folders if len(d) > 1}
    splits = {parts[0] for parts in folders}
    unknown = sorted(splits - set(SPLITS))
    if unknown:
        raise ValueError(
            f"{where}: unknown split folder(s) {unknown}; an image folder holds exactly the "
            f"splits {list(SPLITS)}, as split/class/image files"
        )
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(
            f"{where}: no split folder(s) {missing}; an image folder holds exactly the splits "
            f"{list(SPLITS)}, as split/class/image files"
        )
    classes = {s: sorted(d[1] for d in folders if len(d) == 2 and d[0] == s) for s in SPLITS}
    for split in SPLITS:
        if not classes[split]:
            raise ValueError(f"{where}: split {split!r} has no class folders (it is empty)")
    if classes["train"] != classes["test"]:
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        raise ValueError(
            f"{where}: train and test must have the same classes; only in train: {only_train}, "
            f"only in test: {only_test}"
        )
    class_names = tuple(classes["train"])
    index = {name: i for i, name in enumerate(class_names)}
    tree: dict[str, list[list[Parts]]] = {s: [[] for _ in class_names] for s in SPLITS}
    for parts in files:
        if not _is_image(parts):
            continue
        if len(parts) != 3:
            raise ValueError(
                f"image {source.describe(prefix + parts)} is not at split/class/image; "
                "move it into a class folder of train or test"
            )
        tree[parts[0]][index[parts[1]]].append(prefix + parts)
    for split in SPLITS:
        for name, paths in zip(class_names, tree[split], strict=True):
            if not paths:
                raise ValueError(
                    f"{where}: class folder {split}/{name} has no images "
                    f"({', '.join(IMAGE_EXTENSIONS)})"
                )
            paths.sort()
    return class_names, tree


def _decode_image(data: bytes, name: str) -> np.ndarray:
    """Pixels as (height, width) uint8 for a grey image, (height, width, 3) for a colour one."""
    buffer = io.BytesIO(data)
    try:
        with Image.open(buffer) as image:
            image.load()
            mode = image.mode
            if mode in _GREY_MODES:
                return np.asarray(image if mode == "L" else image.convert("L"))
            if mode in _COLOUR_MODES:
                return np.asarray(image if mode == "RGB" else image.convert("RGB"))
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ...
        # Pillow names the in-memory buffer (<_io.BytesIO object at 0x...>): name the file
        reason = str(exc).replace(repr(buffer), name)
        raise ValueError(f"cannot decode image {name}: {type(exc).__name__}: {reason}") from exc
    raise ValueError(
        f"image {name} has Pillow mode {mode!r}; only 8-bit grey and colour images are supported"
    )


def _decode_tree(source: _TreeSource, provenance: str) -> Split:
    class_names, tree = _layout(source)
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    first: tuple[str, tuple[int, int]] | None = None
    all_grey = True
    for split in SPLITS:
        counts = [len(paths) for paths in tree[split]]
        labels[split] = np.repeat(np.arange(len(class_names), dtype=np.int64), counts)
        out = None
        for i, parts in enumerate(p for paths in tree[split] for p in paths):
            name = source.describe(parts)
            try:
                blob = source.read(parts)
            except (OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
                if isinstance(exc, OSError):
                    raise ValueError(f"cannot read image {name}: {exc}") from exc
                # a zip member whose bytes are damaged or cut off (bad CRC, broken stream)
                raise ValueError(
                    f"cannot read image {name}: the zip is damaged ({type(exc).__name__}: "
                    f"{exc}); copy or download it again"
                ) from exc
            pixels = _decode_image(blob, name)
            if first is None:
                first = (name, pixels.shape[:2])
            if pixels.shape[:2] != first[1]:
                (h, w), (first_h, first_w) = pixels.shape[:2], first[1]
                raise ValueError(
                    f"image {name} is {w}x{h} pixels but {first[0]} is {first_w}x{first_h}; "
                    "every image must have the same size"
                )
            if out is None:
                out = np.empty((sum(counts), *first[1], 3), dtype=np.uint8)
            if pixels.ndim == 2:
                out[i] = pixels[:, :, None]
            else:
                out[i] = pixels
                all_grey = False
        arrays[split] = out
    if all_grey:
        arrays = {s: np.ascontiguousarray(a[..., :1]) for s, a in arrays.items()}
    return Split(*(Dataset(arrays[s], labels[s], class_names, provenance) for s in SPLITS))


def _read_cache(file: Path, provenance: str) -> Split | None:
    """The cached split, or None when there is none or it cannot be used."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as stored:
            class_names = tuple(str(c) for c in stored["class_names"])
            return Split(
                *(
                    Dataset(stored[f"{s}_images"], stored[f"{s}_labels"], class_names, provenance)
                    for s in SPLITS
                )
            )
    except Exception as exc:  # a corrupt cache is rebuilt, never fatal
        warnings.warn(
            f"ignoring unreadable cache file {file} ({type(exc).__name__}: {exc}); rebuilding it",
            stacklevel=3,
        )
        return None


def _write_cache(file: Path, split: Split) -> None:
    """Write the split's arrays atomically: a temporary file in the same folder, then a rename."""
    arrays = {"class_names": np.array(split.train.class_names, dtype=str)}
    for s in SPLITS:
        arrays[f"{s}_images"] = getattr(split, s).images
        arrays[f"{s}_labels"] = getattr(split, s).labels
    try:
        atomic_write(file, lambda handle: np.savez(handle, **arrays))
    except OSError as exc:  # no cache is slower, not wrong
        warnings.warn(f"could not write cache file {file}: {exc}", stacklevel=3)


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
    where = f"{path} (from {origin})"
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
        provenance = f"CIFAR-10 (JPEG copy): {source}"
    else:
        provenance = f"CIFAR-10 from an image folder, not the official pickles: {source}"
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


# --------------------------------------------------------------------------- by name

_LOADERS: dict[str, Callable[..., Split]] = {
    "digits": lambda path, cache_dir: load_digits(),
    "cifar10": load_cifar10,
    "image_folder": load_image_folder,
}
DATASET_NAMES = tuple(_LOADERS)


def load_dataset(name: str, path=None, cache_dir=None) -> Split:
    """The dataset called ``name``: ``"digits"``, ``"cifar10"`` or ``"image_folder"``.

    ``image_folder`` needs ``path``; ``digits`` takes none.
    """
    if not isinstance(name, str) or name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; valid names are {', '.join(DATASET_NAMES)}")
    if name == "image_folder" and path is None:
        raise ValueError("dataset 'image_folder' needs a path to a split/class/image folder or zip")
    if name == "digits" and path is not None:
        raise ValueError(
            f"dataset 'digits' ships with scikit-learn and takes no path, got {path!r}"
        )
    return _LOADERS[name](path, cache_dir)


# --------------------------------------------------------------------------- statistics

# Pixels per chunk: the int64 temporaries of one chunk are 8 MiB.
STATS_CHUNK_ELEMENTS = 1 << 20


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) standard deviation of uint8 images, in 0..255 units.

    Pass the *training* images: normalising with test statistics leaks the
    test set. The pixel histogram of each channel is counted chunk by chunk
    in integers, so the result is exact up to the final float64 rounding and
    no float copy of the images is ever made.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (n, height, width, channels), got shape {images.shape}"
        )
    if images.size == 0:
        raise ValueError(f"images must not be empty, got shape {images.shape}")
    channels = images.shape[3]
    per_image = images.shape[1] * images.shape[2] * channels
    rows = max(1, STATS_CHUNK_ELEMENTS // per_image)
    offsets = np.arange(channels, dtype=np.intp) * 256
    counts = np.zeros(256 * channels, dtype=np.int64)
    for start in range(0, images.shape[0], rows):
        pixels = images[start : start + rows].reshape(-1, channels)
        counts += np.bincount((pixels + offsets).ravel(), minlength=256 * channels)
    counts = counts.reshape(channels, 256)
    values = np.arange(256, dtype=np.int64)
    mean = np.empty(channels, dtype=np.float64)
    std = np.empty(channels, dtype=np.float64)
    for c in range(channels):
        # Python integers: n * sum(x^2) overflows int64 for a CIFAR-sized set
        n = int(counts[c].sum())
        total = int(counts[c] @ values)
        squares = int(counts[c] @ (values * values))
        mean[c] = total / n
        std[c] = ((n * squares - total * total) / (n * n)) ** 0.5
    return mean, std
