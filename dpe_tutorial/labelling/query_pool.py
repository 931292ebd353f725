"""A query's pool of images: listed, decoded once and cached, and what was left out.

:func:`list_pool` lists a pool folder (searched recursively, symlinked folders
followed) or zip without decoding it, and keeps what it left out and why:
hidden files and folders, files that are not images of :data:`POOL_EXTENSIONS`,
and second paths to a file already listed (a symlink, a linked folder, a
repeated zip entry), so that each file counts once. :meth:`PoolListing.read`
decodes every image once (cached) and collects the unreadable ones instead of
stopping at the first; :func:`check_unreadable` refuses them all in one line,
or lets the query go on without them when told to skip them. Nothing here
imports a Keras backend.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..running import data
from ..running.data import imagefolders
from ..running.files import atomic_write

# what Pillow reads from its own wheels; a GIF or TIFF gives its first frame
POOL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_IMAGE_SIZE = 32
POOL_CACHE_FORMAT = 2  # bumped whenever the cached arrays would change
UNREADABLE_NAMED = 3  # unreadable images an error line names (--skip-unreadable lists all)
HIDDEN, NOT_IMAGE, DUPLICATE = "hidden", "not an image", "duplicate"

Parts = tuple[str, ...]


# --------------------------------------------------------------------------- listing a pool


class _PoolFolder(imagefolders._FolderSource):
    """A pool folder: every file once, real paths before paths through a link."""

    def _walk(self) -> tuple[list[Parts], set[Parts]]:
        self.skipped: dict[str, tuple[str, str]] = {}  # path -> (kind, detail)
        self.broken: list[tuple[str, str]] = []  # (path, reason): listed but not readable
        found: list[tuple[bool, Parts, tuple[int, int]]] = []
        folders: set[Parts] = set()
        visited: set[tuple[int, int]] = set()
        # real folders first, so that a link into the pool is the duplicate, not its target
        real: list[tuple[Parts, Path, bool]] = [((), self.path, False)]
        linked: list[tuple[Parts, Path, bool]] = []
        while real or linked:
            parts, folder, via_link = real.pop() if real else linked.pop(0)
            name = "/".join(parts)
            try:
                identity = _identity(folder.stat())
                if identity in visited:  # a loop, or a folder listed by another path
                    self.skipped[name + "/"] = (DUPLICATE, "a folder already listed")
                    continue
                visited.add(identity)
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except OSError as error:
                self.broken.append((name + "/", f"cannot list folder {folder}: {error.strerror}"))
                continue
            for entry in entries:
                sub = (*parts, entry.name)
                if imagefolders._ignored(entry.name):
                    self.skipped["/".join(sub)] = (HIDDEN, "")
                    continue
                link = via_link or entry.is_symlink()
                if entry.is_dir():  # follows a link
                    folders.add(sub)
                    (linked if entry.is_symlink() else real).append((sub, Path(entry.path), link))
                    continue
                try:
                    found.append((link, sub, _identity(entry.stat())))
                except OSError as error:  # a dangling link
                    if is_pool_image(sub):
                        reason = f"cannot read image {entry.path}: {error.strerror}"
                        self.broken.append(("/".join(sub), reason))
        kept: dict[tuple[int, int], Parts] = {}
        for _, parts, identity in sorted(found):
            if identity in kept:
                self.skipped["/".join(parts)] = (DUPLICATE, "/".join(kept[identity]))
            else:
                kept[identity] = parts
        return sorted(kept.values()), folders

    def image_files(self) -> list[Parts]:
        return [p for p in self._files if is_pool_image(p)]


def _identity(stat: os.stat_result) -> tuple[int, int]:
    return (stat.st_dev, stat.st_ino)


def is_pool_image(parts: Parts) -> bool:
    return parts[-1].lower().endswith(POOL_EXTENSIONS)


@dataclass(frozen=True, eq=False)
class Pool:
    """The readable images of a pool: ``paths`` relative to its root, ``images`` uint8.

    ``images`` has shape (n, s, s, 3); ``unreadable`` holds ``(path, reason)``
    for each image that could not be read, left out of ``paths``.
    """

    root: Path
    paths: tuple[str, ...]
    images: np.ndarray
    provenance: str
    unreadable: tuple[tuple[str, str], ...] = ()

    def index(self) -> dict[str, int]:
        return {path: i for i, path in enumerate(self.paths)}


class PoolListing:
    """The image files of a pool folder or zip, and what was left out; nothing decoded."""

    def __init__(self, pool):
        self.root = Path(pool)
        if self.root.is_dir():
            self.source = _PoolFolder(self.root)
        else:
            self.source = imagefolders.open_tree(self.root, "pool", "images")
        self.skipped: dict[str, tuple[str, str]] = getattr(self.source, "skipped", {})
        self.broken: list[tuple[str, str]] = getattr(self.source, "broken", [])
        with self.source:
            files, _ = self.source.entries()
        for parts in getattr(self.source, "hidden", []):  # a zip's hidden entries
            self.skipped["/".join(parts)] = (HIDDEN, "")
        unique: dict[str, Parts] = {}
        for parts in files:
            path = "/".join(parts)
            if path in unique:  # a zip may hold one name twice
                self.skipped.setdefault(path + " (again)", (DUPLICATE, path))
            elif not is_pool_image(parts):
                self.skipped[path] = (NOT_IMAGE, posixpath.splitext(parts[-1])[1].lower())
            else:
                unique[path] = parts
        self.parts = [unique[path] for path in sorted(unique)]
        self.paths = tuple(sorted(unique))
        if not self.paths and not self.broken:
            raise ValueError(f"pool {self.root} holds no images ({', '.join(POOL_EXTENSIONS)})")

    def why_left_out(self, path: str) -> str | None:
        """Why ``path`` is not among the pool's images, when the listing knows."""
        kind, detail = self.skipped.get(path, (None, ""))
        unreadable = dict(self.broken).get(path)
        if unreadable:
            return unreadable
        if kind == HIDDEN:
            return "it is hidden (its name or a folder's starts with '.'); hidden files are skipped"
        if kind == NOT_IMAGE:
            return (
                f"its type ({detail or 'no extension'}) is not one of {', '.join(POOL_EXTENSIONS)}"
            )
        if kind == DUPLICATE:
            return f"it is a second path to {detail!r}; name that one"
        return None

    def read(self, image_size: int, cache_dir=None) -> Pool:
        """Every image decoded once (then cached), unreadable ones collected, not raised."""
        check_image_size(image_size)
        key = self.source.cache_key()
        where = f"pool {self.root.name} ({self.source.key_kind} {key})"
        cache = Path(cache_dir if cache_dir is not None else data.default_cache_dir()) / (
            f"query-pool-{key}-{image_size}px-v{POOL_CACHE_FORMAT}.npz"
        )
        cached = _read_cache(cache, self.paths, image_size)
        if cached is None:
            cached = self._decode(image_size)
            _write_cache(cache, *cached)
        paths, images, failed = cached
        unreadable = tuple(sorted([*self.broken, *failed]))
        provenance = f"{where}, {image_size}x{image_size} RGB"
        return Pool(self.root, paths, images, provenance, unreadable)

    def _decode(self, image_size: int):
        images = np.zeros((len(self.parts), image_size, image_size, 3), dtype=np.uint8)
        readable = np.ones(len(self.parts), dtype=bool)
        failed: list[tuple[str, str]] = []
        with self.source:
            for i, (path, parts) in enumerate(zip(self.paths, self.parts, strict=True)):
                read = lambda parts=parts: self.source.read(parts)  # noqa: E731
                try:
                    images[i] = read_image(read, self.source.describe(parts), image_size)
                except ValueError as error:
                    readable[i] = False
                    failed.append((path, str(error)))
        paths = tuple(p for p, ok in zip(self.paths, readable, strict=True) if ok)
        return paths, images[readable], tuple(failed)


def read_image(read, name: str, image_size: int) -> np.ndarray:
    """``read()``'s image, uint8 RGB ``image_size`` square; a failure is a ValueError naming it."""
    try:
        blob = read()
    except OSError as error:
        raise ValueError(f"cannot read image {name}: {error.strerror or error}") from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        # a zip member whose bytes are damaged or cut off (bad CRC, broken stream)
        raise ValueError(
            f"cannot read image {name}: the zip is damaged ({type(error).__name__}: {error})"
        ) from error
    pixels = imagefolders.decode_image(blob, name)  # names the file when it fails
    image = Image.fromarray(pixels).convert("RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(image)


def list_pool(pool) -> PoolListing:
    """A pool's image files and what was left out, without decoding anything."""
    return PoolListing(pool)


def read_pool(pool, image_size: int = DEFAULT_IMAGE_SIZE, cache_dir=None, skip_unreadable=False):
    """The images of a pool folder or zip, RGB, ``image_size`` square, decoded once and cached.

    Unreadable images raise one ValueError naming them (see :func:`check_unreadable`),
    or with ``skip_unreadable`` are left out and listed in ``Pool.unreadable``.
    """
    check_image_size(image_size)
    images = list_pool(pool).read(image_size, cache_dir)
    check_unreadable(images.unreadable, f"pool {images.root}", skip_unreadable)
    return images


def check_unreadable(unreadable, where: str, skip: bool) -> None:
    """Refuse unreadable images in one line that counts them and names the first few."""
    if not unreadable or skip:
        return
    named = "; ".join(reason for _, reason in unreadable[:UNREADABLE_NAMED])
    more = len(unreadable) - UNREADABLE_NAMED
    raise ValueError(
        f"{len(unreadable)} image(s) in {where} cannot be read: {named}"
        + (f"; and {more} more" if more > 0 else "")
        + "; fix or remove them, or add --skip-unreadable to leave them out and list them"
    )


def _read_cache(file: Path, paths: tuple[str, ...], image_size: int):
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as stored:
            readable = tuple(str(p) for p in stored["paths"])
            failed = tuple((str(p), str(r)) for p, r in stored["unreadable"].reshape(-1, 2))
            images = stored["images"]
        if tuple(sorted([*readable, *(p for p, _ in failed)])) == paths and images.shape == (
            len(readable),
            image_size,
            image_size,
            3,
        ):
            return readable, images, failed
    except Exception:  # a corrupt cache is rebuilt, never fatal
        pass
    return None


def _write_cache(file: Path, paths, images: np.ndarray, failed) -> None:
    arrays = {
        "paths": np.array(paths, dtype=str),
        "images": images,
        "unreadable": np.array(failed, dtype=str).reshape(-1, 2),
    }
    try:
        atomic_write(file, lambda handle: np.savez(handle, **arrays))
    except OSError:  # no cache is slower, not wrong
        pass


def check_image_size(image_size) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
        raise ValueError(f"image_size must be a whole number of pixels, got {image_size!r}")
    if not 8 <= image_size <= 512:
        raise ValueError(f"image_size must be between 8 and 512 pixels, got {image_size}")


def summary_line(listing: PoolListing, pool: Pool, n_labelled: int) -> str:
    """What was read, in one line: images found, labelled, unlabelled, and skipped by reason.

    ``pool 'photos': 25 images found, 6 labelled, 18 unlabelled; skipped 1 hidden,
    2 non-image files (.txt 1, .heic 1), 1 duplicate path, 1 unreadable``
    """
    found = len(pool.paths) + len(pool.unreadable)
    kinds = Counter(kind for kind, _ in listing.skipped.values())
    types = Counter(d or "no extension" for k, d in listing.skipped.values() if k == NOT_IMAGE)
    parts = []
    if kinds[HIDDEN]:
        parts.append(f"{kinds[HIDDEN]} hidden")
    if kinds[NOT_IMAGE]:
        shown = ", ".join(f"{ext} {n}" for ext, n in types.most_common())
        parts.append(f"{_count(kinds[NOT_IMAGE], 'non-image file')} ({shown})")
    if kinds[DUPLICATE]:  # a link to a file or folder already read
        parts.append(_count(kinds[DUPLICATE], "duplicate path"))
    if pool.unreadable:
        parts.append(f"{len(pool.unreadable)} unreadable")
    skipped = "skipped " + ", ".join(parts) if parts else "nothing skipped"
    return (
        f"pool {str(listing.root)!r}: {_count(found, 'image')} found, {n_labelled} labelled, "
        f"{len(pool.paths) - n_labelled} unlabelled; {skipped}"
    )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")
