"""Shifted inputs made offline from test images: does the ensemble know what it has not seen?

Each shift keeps the images' shape and ``uint8`` type, so they go through the
same model as the test set:

============ ================================================================
``noise``     Gaussian noise with the images' per-channel mean and spread
``contrast``  each image pulled towards its own mean colour, keeping 20 % of
              its contrast (a faded photograph)
``shuffle``   each image's pixels permuted at random: the colours stay, the
              shapes go
============ ================================================================

An uncertainty score separates the test set from a shifted copy when it is
higher on the shifted images; :func:`dpe_tutorial.method.metrics.separation_auroc`
measures that.
"""

from __future__ import annotations

import numpy as np

SHIFTS = ("noise", "contrast", "shuffle")
KEPT_CONTRAST = 0.2


def shifted(images, kind: str, rng: np.random.Generator) -> np.ndarray:
    """A shifted copy of ``images`` (``(n, height, width, channels)`` uint8)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(
            f"images must be uint8 of shape (n, height, width, channels), got "
            f"{images.dtype} {images.shape}"
        )
    n, height, width, channels = images.shape
    pixels = images.reshape(n, height * width, channels).astype(np.float32)
    if kind == "noise":
        mean = pixels.mean(axis=(0, 1))
        std = pixels.std(axis=(0, 1))
        out = mean + std * rng.standard_normal(pixels.shape, dtype=np.float32)
    elif kind == "contrast":
        own_mean = pixels.mean(axis=1, keepdims=True)
        out = own_mean + KEPT_CONTRAST * (pixels - own_mean)
    elif kind == "shuffle":
        order = np.argsort(rng.random((n, height * width)), axis=1)
        out = np.take_along_axis(pixels, order[..., None], axis=1)
    else:
        raise ValueError(f"unknown shift {kind!r}; valid shifts are {', '.join(SHIFTS)}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(images.shape)


def shifted_sets(images, n: int, seed: int) -> dict[str, np.ndarray]:
    """Every shift of the first ``n`` images (all when fewer), drawn from ``seed``."""
    chosen = np.asarray(images)[: max(0, int(n))]
    if len(chosen) == 0:
        return {kind: chosen.copy() for kind in SHIFTS}
    rng = np.random.default_rng(seed)
    return {kind: shifted(chosen, kind, rng) for kind in SHIFTS}
