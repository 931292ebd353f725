"""Spreading an ensemble over several devices with Keras's own distribution API.

Three modes (the config field ``distribution``):

``none``
    everything on the default device (the default).
``data``
    data parallel: every device holds all members and trains on its share of
    each batch (``keras.distribution.DataParallel``).
``members``
    the member axis sharded over the devices: with the ``grouped`` layout the
    members are the output-channel blocks of every grouped convolution, the
    batch-norm vectors and the leading axis of every ``MemberDense``, so each
    device holds and trains its own members (``keras.distribution.ModelParallel``
    with a ``LayoutMap``). The members must divide evenly over the devices.

``keras.distribution`` runs on the JAX backend only; other backends, the
``branches`` layout with ``members`` and uneven splits are refused with a
clear error. Build, compile, fit and predict inside ``distribution.scope()``.
"""

from __future__ import annotations

import contextlib

import keras

from .choices import DISTRIBUTIONS as MODES

MEMBER_AXIS = "members"
BATCH_AXIS = "batch"

# variable paths of the grouped layout -> which axis holds the members
_MEMBER_SHARDING = {
    r"conv2d(_\d+)?/kernel$": (None, None, None, MEMBER_AXIS),  # (kh, kw, in/E, E * out)
    r"batch_normalization(_\d+)?/(gamma|beta|moving_mean|moving_variance)$": (MEMBER_AXIS,),
    r"member_dense(_\d+)?/kernel$": (MEMBER_AXIS, None, None),  # (E, d, units)
    r"member_dense(_\d+)?/bias$": (MEMBER_AXIS, None),  # (E, units)
}


def check(mode: str, layout: str, n_members: int) -> None:
    """Raise ValueError when ``mode`` cannot run here with this layout and member count."""
    if mode not in MODES:
        raise ValueError(f"unknown distribution {mode!r}; valid modes are {', '.join(MODES)}")
    if mode == "none":
        return
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"distribution {mode!r} needs the JAX backend (keras.distribution runs on JAX "
            f"only); this process runs {backend}: set KERAS_BACKEND=jax"
        )
    if mode == "members":
        if layout != "grouped":
            raise ValueError(
                "distribution 'members' shards the member axis of the grouped layout: "
                f"set layout=grouped (got {layout!r})"
            )
        devices = len(keras.distribution.list_devices())
        if n_members % devices:
            raise ValueError(
                f"distribution 'members' needs the {n_members} members to divide evenly over "
                f"the {devices} devices: set members to a multiple of {devices}, use fewer "
                "devices (CUDA_VISIBLE_DEVICES) or set distribution=data"
            )


def check_batches(mode: str, sizes, batch_size: int) -> None:
    """Raise ValueError when ``data`` would split a batch of a round unevenly over the devices."""
    if mode != "data":
        return
    devices = len(keras.distribution.list_devices())
    for n in sizes:
        uneven = [b for b in {min(batch_size, n), n % batch_size} if b % devices]
        if uneven:
            raise ValueError(
                f"distribution 'data' splits every batch over the {devices} devices, but the "
                f"round of {n} labels has a batch of {uneven[0]}: choose batch_size and budget "
                f"so that every batch is a multiple of {devices}, or set distribution=members"
            )


def make(mode: str, layout: str, n_members: int):
    """The ``keras.distribution`` object for ``mode``, or None for ``"none"``."""
    check(mode, layout, n_members)
    if mode == "none":
        return None
    devices = keras.distribution.list_devices()
    if mode == "data":
        return keras.distribution.DataParallel(devices=devices)
    mesh = keras.distribution.DeviceMesh(
        shape=(1, len(devices)), axis_names=(BATCH_AXIS, MEMBER_AXIS), devices=devices
    )
    layout_map = keras.distribution.LayoutMap(mesh)
    for path, axes in _MEMBER_SHARDING.items():
        layout_map[path] = axes
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name=BATCH_AXIS)


def scope(distribution):
    """``distribution.scope()``, or a context that does nothing for None (mode ``none``)."""
    return contextlib.nullcontext() if distribution is None else distribution.scope()


def describe(distribution) -> dict:
    """What provenance records: the mode's devices and mesh."""
    if distribution is None:
        return {"mode": "none"}
    mesh = distribution.device_mesh
    mode = "data" if isinstance(distribution, keras.distribution.DataParallel) else "members"
    return {
        "mode": mode,
        "devices": [str(d) for d in mesh.devices.ravel()],
        "mesh": dict(zip(mesh.axis_names, (int(s) for s in mesh.shape), strict=True)),
    }
