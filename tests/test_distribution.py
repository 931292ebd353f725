"""Members over several devices: keras.distribution with JAX and 4 virtual CPU devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from dpe_tutorial import distribution

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def one_step_per_mode():
    """One SGD step per mode in a child process (XLA reads its device count at start)."""
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(HERE.parent),
    )
    child = subprocess.run(
        [sys.executable, str(HERE / "distributed_child.py"), *distribution.MODES],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_every_mode_gives_the_single_device_loss_and_gradients(one_step_per_mode):
    single = one_step_per_mode["none"]
    for mode in ("data", "members"):
        other = one_step_per_mode[mode]
        assert other["loss"] == pytest.approx(single["loss"], rel=1e-5)
        for mine, theirs in zip(other["gradients"], single["gradients"], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_each_device_holds_its_own_members(one_step_per_mode):
    result = one_step_per_mode["members"]
    assert result["described"]["mesh"] == {"batch": 1, "members": 4}
    members, devices = 8, 4
    sharded = 0
    for (path, shards), shape in zip(result["placement"].items(), result["shapes"], strict=True):
        member_axis = 0 if "member_dense" in path or "batch_normalization" in path else -1
        if len(shards) == 1 or all(i is None for _, index in shards for i in index):
            continue  # replicated: biases of nothing, e.g. none here
        sharded += 1
        per_member = shape[member_axis] // members
        for device, index in shards:
            d = int(device.split(":")[-1])
            start, stop = index[member_axis]
            # device d holds members 2d and 2d + 1, and nothing else
            assert (start, stop) == (
                d * per_member * members // devices,
                (d + 1) * per_member * members // devices,
            ), (path, device, index)
    assert sharded >= 5  # every grouped conv kernel, batch-norm vector and MemberDense weight


@pytest.mark.slow
def test_data_parallel_replicates_every_weight_on_every_device(one_step_per_mode):
    result = one_step_per_mode["data"]
    for shards in result["placement"].values():
        assert len(shards) == 4
        assert all(i is None for _, index in shards for i in index)


def test_modes_that_cannot_run_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="unknown distribution 'model'"):
        distribution.check("model", "grouped", 8)
    distribution.check("none", "branches", 3)  # always possible
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match="needs the JAX backend"):
            distribution.check("members", "grouped", 8)
    else:
        with pytest.raises(ValueError, match="set layout=grouped"):
            distribution.check("members", "branches", 8)
