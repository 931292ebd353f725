"""Your own images: a ``split/class/image`` tree in a folder or a zip, decoded once and cached.

:func:`load_image_folder` reads the tree through a source (:class:`_FolderSource`
or :class:`_ZipSource`: the same listing and reading for both), checks its
layout, decodes every image with Pillow and caches the arrays as an ``.npz``
keyed by the sha256 of the zip or of the folder's listing.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write
from .splits import Dataset, Split

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
# Pillow modes kept as one grey channel; every other supported mode becomes RGB
# (alpha is dropped, palettes are expanded).
_GREY_MODES = frozenset({"1", "L", "LA"})
_COLOUR_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"})
# 16-bit grey (PNG, TIFF), scaled from 0..65535 to 0..255; Pillow's own convert("L") clips
# instead, turning most 16-bit images white. "I" is how some decoders hand them over.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
SUPPORTED_MODES = "8-bit grey or colour (with or without alpha, or a palette) and 16-bit grey"
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
    source = open_tree(path, "image folder", "a split/class/image tree")
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


def open_tree(path: Path, what: str, holding: str) -> _TreeSource:
    """A folder or a zip as one source of image files (listing, reading, cache key).

    ``what`` names the path in errors (``"image folder"``, ``"pool"``),
    ``holding`` says what it should hold.
    """
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    if path.is_dir():
        return _FolderSource(path)
    if zipfile.is_zipfile(path):
        return _ZipSource(path)
    if _looks_like_zip(path):
        raise ValueError(_damaged_zip_message(path))
    raise ValueError(f"{what} {path} is neither a folder nor a zip file of {holding}")


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


def is_image(parts: Parts) -> bool:
    return parts[-1].lower().endswith(IMAGE_EXTENSIONS)


class _FolderSource(_TreeSource):
    key_kind = "listing sha256"

    def __init__(self, path: Path):
        super().__init__(path)
        self._files, self._folders = self._walk()

    def _walk(self) -> tuple[list[Parts], set[Parts]]:
        files: list[Parts] = []
        folders: set[Parts] = set()
        for root, names, found in os.walk(self.path):
            names[:] = sorted(f for f in names if not _ignored(f))
            rel = Path(root).relative_to(self.path).parts
            folders.update((*rel, f) for f in names)
            files.extend((*rel, f) for f in sorted(found) if not _ignored(f))
        return files, folders

    def entries(self) -> tuple[list[Parts], set[Parts]]:
        return self._files, self._folders

    def image_files(self) -> list[Parts]:
        return [p for p in self._files if is_image(p)]

    def cache_key(self) -> str:
        # Content hashing a folder would read every image; paths, sizes and
        # modification times change whenever an image is added, removed or edited.
        digest = hashlib.sha256(b"image folder listing\n")
        for parts in sorted(self._folders):
            digest.update(f"D {'/'.join(parts)}\n".encode())
        for parts in sorted(self.image_files()):
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
        self.hidden: list[Parts] = []  # the entries left out as hidden, for a pool's summary

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
        self.hidden = []
        for info in self._zip.infolist():
            parts = tuple(p for p in info.filename.split("/") if p)
            if parts and any(_ignored(p) for p in parts):
                self.hidden.append(parts)
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
    root_images = any(len(f) == 1 and is_image(f) for f in files)
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
        if not is_image(parts):
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


def decode_image(data: bytes, name: str) -> np.ndarray:
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
            if mode in _SIXTEEN_BIT_MODES:
                wide = np.asarray(image).astype(np.float64)
                return np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ...
        # Pillow names the in-memory buffer (<_io.BytesIO object at 0x...>): name the file
        reason = str(exc).replace(repr(buffer), name)
        raise ValueError(f"cannot decode image {name}: {type(exc).__name__}: {reason}") from exc
    raise ValueError(
        f"image {name} has Pillow mode {mode!r}; supported are {SUPPORTED_MODES} images"
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
            pixels = decode_image(blob, name)
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
