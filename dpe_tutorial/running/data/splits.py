"""Images and labels in memory: :class:`Dataset`, :class:`Split` and what is computed from them.

Images stay ``uint8`` with shape ``(n, height, width, channels)`` until a batch
is made: the CIFAR-10 pool as float32 would be four times larger. Each dataset
carries a ``provenance`` string, so that a results table can say exactly which
data it was computed on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


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
