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
``load_mnist(path)``           MNIST from an image-folder zip such as
                               ``../shared/data/mnist-png.zip`` (or ``$DPE_MNIST``)
``load_image_folder(path)``    your own images: a ``split/class/image`` tree in
                               a folder or a zip, decoded once and then cached
``load_dataset(name, path)``   any of these by name, for configs
``channel_statistics(images)`` per-channel mean and std for normalisation:
                               pass the *training* images only
============================== ================================================

The package needs numpy, Pillow and scikit-learn only. Keras is imported
inside the download branch of :func:`load_cifar10` and nowhere else, so
importing it is cheap and works with every Keras backend, or none.

By source: :mod:`~dpe_tutorial.running.data.splits` (the containers, fingerprints and
statistics), :mod:`~dpe_tutorial.running.data.datasets` (digits and CIFAR-10) and
:mod:`~dpe_tutorial.running.data.imagefolders` (your own image trees and zips, and
their cache). Everything public is importable from here.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ...method import checks
from .datasets import (
    CIFAR10_CLASSES,
    CIFAR10_JPEG_COPY_SHA256,
    CIFAR10_MD5,
    CIFAR10_TRAIN_BATCHES,
    DIGITS_TEST_SIZE,
    KERAS_CIFAR10_DIRS,
    MNIST_PNG_COPY_SHA256,
    DatasetNotFoundError,
    load_cifar10,
    load_digits,
    load_mnist,
)
from .imagefolders import (
    CACHE_FORMAT,
    IMAGE_EXTENSIONS,
    default_cache_dir,
    file_sha256,
    load_image_folder,
)
from .splits import Dataset, Split, channel_statistics, fingerprint

__all__ = [
    "CACHE_FORMAT",
    "CIFAR10_CLASSES",
    "CIFAR10_JPEG_COPY_SHA256",
    "CIFAR10_MD5",
    "CIFAR10_TRAIN_BATCHES",
    "DATASET_NAMES",
    "DIGITS_TEST_SIZE",
    "IMAGE_EXTENSIONS",
    "KERAS_CIFAR10_DIRS",
    "MNIST_PNG_COPY_SHA256",
    "Dataset",
    "DatasetNotFoundError",
    "Split",
    "channel_statistics",
    "check_source",
    "default_cache_dir",
    "file_sha256",
    "fingerprint",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_mnist",
]

_LOADERS: dict[str, Callable[..., Split]] = {
    "digits": lambda path, cache_dir: load_digits(),
    "cifar10": load_cifar10,
    "mnist": load_mnist,
    "image_folder": load_image_folder,
}
DATASET_NAMES = tuple(_LOADERS)


def check_source(name, path, *, dataset: str = "dataset", path_name: str = "path") -> None:
    """The rules for a dataset's name and path; ``dataset`` and ``path_name`` name them.

    ``image_folder`` needs a path; ``digits`` takes none; ``cifar10`` may have one.
    """
    checks.one_of(dataset, name, DATASET_NAMES)
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"{path_name} must be a path or null, got {path!r}")
    if name == "image_folder" and not path:
        raise ValueError(
            f"{path_name} must be the image folder or zip (required for dataset image_folder), "
            f"got {path!r}"
        )
    if name == "digits" and path:
        raise ValueError(
            f"{path_name} must be null for dataset digits (it ships with scikit-learn), "
            f"got {path!r}"
        )


def load_dataset(name: str, path=None, cache_dir=None) -> Split:
    """The dataset called ``name``: ``"digits"``, ``"cifar10"`` or ``"image_folder"``.

    ``image_folder`` needs ``path``; ``digits`` takes none.
    """
    check_source(name, path)
    return _LOADERS[name](path, cache_dir)
