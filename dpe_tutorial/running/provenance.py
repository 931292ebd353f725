"""Where a result or a benchmark figure came from: machine, device, versions, commit, lock."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np

# /proc/cpuinfo flags of the units that compute in bfloat16
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
# the vector units that set a CPU's speed here: two CPUs of one model name can differ in them
# (Gal et al.'s CNN in bfloat16: 410 to 440 images/s on an AMD EPYC with AVX-512 BF16, 12 on
# one without AVX-512; README "Benchmarks")
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", *BFLOAT16_FLAGS)
# the units for which TensorFlow turns its oneDNN operations on by itself (x86 Linux): those its
# 2.9 release notes name, and AVX-VNNI and AMX's other parts; checked against TensorFlow's own
# answer only where tests run (tests/test_experiment.py)
ONEDNN_DEFAULT_FLAGS = (
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def cpu_units(names, cpuinfo: str | None = None) -> list[str]:
    """Which of ``names`` this CPU's flags list, in the order of ``names`` (empty where none,
    or not Linux)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as file:
                cpuinfo = file.read()
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return [flag for flag in names if flag in flags]


def _gpu_name() -> str | None:
    """The NVIDIA GPU's name, or None where nvidia-smi is absent or finds none."""
    try:
        names = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return names.splitlines()[0] if names else None


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, with "+dirty" for local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("+dirty" if dirty else "")


def lock_sha256(lock: Path | None = None) -> str | None:
    """The sha256 of the ``uv.lock`` that pins the environment (``make setup`` installs from
    it), read from the checkout the package runs from; None where there is none (an
    installed wheel)."""
    path = Path(__file__).resolve().parents[2] / "uv.lock" if lock is None else Path(lock)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def machine() -> dict:
    """The machine, without starting a Keras backend."""
    return {
        "cpu": _cpu_name(),
        # the model name alone does not tell two such CPUs apart
        "cpu_units": cpu_units(VECTOR_FLAGS),
        "cores": os.cpu_count(),
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def environment(distribution: str = "none") -> dict:
    """The machine plus package, Keras, backend, devices, distribution mode, git commit and
    the sha256 of the lock file (``lock_sha256``, see :func:`lock_sha256`).

    ``device`` is the first device Keras computes on, ``devices`` all of them;
    ``distribution`` is the config's mode (``none``: the run used ``device`` only).
    """
    import keras

    from .. import __version__

    backend = keras.backend.backend()
    info = machine()
    devices = keras_devices()
    return {
        "dpe_tutorial": __version__,
        "keras": keras.__version__,
        "backend": backend,
        "backend_version": _backend_version(backend),
        "device": devices[0],
        "devices": devices,
        "device_count": len(devices),
        "distribution": distribution,
        "device_name": info["gpu"] or info["cpu"],
        "git_commit": git_commit(),
        "lock_sha256": lock_sha256(),
        **info,
    }


def session_environment() -> dict:
    """What a session of a run records about where it ran: commit, lock, machine (and its CPU's
    vector units), backend, the oneDNN state and the dtype policy (machines and oneDNN move
    results in the last digits)."""
    import keras

    info = machine()
    backend = keras.backend.backend()
    return {
        "git_commit": git_commit(),
        "lock_sha256": lock_sha256(),
        "machine": f"{info['gpu'] or info['cpu']}, {info['cores']} cores",
        "cpu_units": info["cpu_units"],
        "backend": backend,
        "onednn": onednn_state(backend),
    }


def onednn_state(backend: str, cpuinfo: str | None = None) -> str | None:
    """TensorFlow's oneDNN custom operations as this process has them; None off TensorFlow.

    ``TF_ENABLE_ONEDNN_OPTS`` set to 0 or 1 decides. Without it TensorFlow decides by the
    CPU: on x86 Linux it turns them on where the CPU has units for neural networks
    (:data:`ONEDNN_DEFAULT_FLAGS`) and leaves them off elsewhere (checked: off on an AMD
    EPYC with AVX2 only, on there with the variable at 1).
    """
    if backend != "tensorflow":
        return None
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        return "off" if value.strip().lower() in ("0", "false") else "on"
    if cpuinfo is None and (platform.system() != "Linux" or platform.machine() != "x86_64"):
        return "default (TensorFlow decides by the CPU)"
    units = cpu_units(ONEDNN_DEFAULT_FLAGS, cpuinfo)
    return f"default: {'on' if units else 'off'} for this CPU"


def keras_devices() -> list[str]:
    """Every device the Keras backend can compute on, such as ["gpu:0", "gpu:1"]."""
    import keras

    try:
        return [str(d) for d in keras.distribution.list_devices()]
    except (AttributeError, NotImplementedError):
        return [keras_device()]  # no distribution support for this backend (PyTorch)


def keras_device() -> str:
    """The device the Keras backend computes on, such as "cpu:0" or "gpu:0"."""
    import keras

    try:
        return keras.distribution.list_devices()[0]
    except (AttributeError, NotImplementedError):
        pass  # Keras has no distribution support for this backend (PyTorch): ask a tensor
    device = str(getattr(keras.ops.zeros(()), "device", "unknown")).lower()
    if "cuda" in device or "gpu" in device:
        return "gpu:" + (device.rsplit(":", 1)[1] if ":" in device else "0")
    return "cpu:0" if "cpu" in device else device


def _backend_version(name: str) -> str | None:
    distributions = {
        "tensorflow": ("tensorflow", "tensorflow-cpu"),
        "jax": ("jax",),
        "torch": ("torch",),
    }
    for distribution in distributions.get(name, ()):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None
