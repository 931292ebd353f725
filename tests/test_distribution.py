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

from dpe_tutorial.method import distribution
from dpe_tutorial.running import config as config_module
from dpe_tutorial.running import experiment, run_record

HERE = Path(__file__).parent


def _run_child(*args, timeout=600) -> dict:
    """A child process on JAX with 4 virtual CPU devices (XLA reads the count at start)."""
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND="jax",
        # 4 virtual devices share 2 cores with whatever else runs: one device's thread can
        # reach a collective more than XLA's default 40 s after the others, and XLA aborts
        XLA_FLAGS="--xla_force_host_platform_device_count=4"
        " --xla_cpu_collective_call_terminate_timeout_seconds=900"
        " --xla_cpu_collective_timeout_seconds=900",
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(HERE.parent),
    )
    child = subprocess.run(
        [sys.executable, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def one_step_per_mode():
    """One SGD step per mode in a child process."""
    return _run_child(HERE / "distributed_child.py", *distribution.MODES)


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


# --- the config field and its checks ---------------------------------------------------------

ROOT = HERE.parent


def test_the_field_defaults_to_none_and_leaves_folder_names_alone():
    plain = config_module.preset("smoke")
    assert plain.distribution == "none"
    spread = config_module.configure("smoke", layout="grouped", distribution="members")
    assert config_module.run_slug(spread) == config_module.run_slug(
        config_module.configure("smoke", layout="grouped")
    )
    assert spread.with_overrides(["distribution=data"]).distribution == "data"


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {"distribution": "gpus"},
            "config field 'distribution' must be one of none, data, members",
        ),
        ({"distribution": True}, "config field 'distribution' must be one of"),
        ({"distribution": "members"}, "set layout=grouped, or distribution=data"),
    ],
)
def test_a_mode_the_config_cannot_run_is_refused_in_one_line(overrides, words):
    with pytest.raises(ValueError, match=words) as caught:
        config_module.configure("smoke", **overrides)
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(keras.backend.backend() == "jax", reason="the JAX backend can distribute")
def test_another_backend_is_refused_before_a_folder_is_made(tmp_path):
    config = config_module.configure("smoke", layout="grouped", distribution="members")
    with pytest.raises(ValueError, match=r"needs the JAX backend.*set KERAS_BACKEND=jax"):
        experiment.run_experiment(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "run").exists()


def test_uneven_members_and_batches_say_what_to_change(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(keras.distribution, "list_devices", lambda: ["cpu:0", "cpu:1", "cpu:2"])
    with pytest.raises(ValueError, match="set members to a multiple of 3"):
        distribution.check("members", "grouped", 4)
    distribution.check("members", "grouped", 6)
    with pytest.raises(ValueError, match="round of 50 labels has a batch of 2: choose"):
        distribution.check_batches("data", [48, 50], 24)
    distribution.check_batches("data", [48, 96], 24)
    distribution.check_batches("members", [50], 32)  # members mode does not split batches


def test_runs_made_before_the_field_still_load_and_resume_as_none():
    folders = sorted((ROOT / "results" / "objective-study").glob("w*/*/config.json"))
    assert folders, "results/objective-study holds real runs"
    for path in folders:
        stored = json.loads(path.read_text())
        assert "distribution" not in stored["config"]
        config = config_module.ExperimentConfig.from_dict(stored["config"])
        assert config.distribution == "none"
        assert config_module.run_slug(config) == path.parent.name
        sizes = stored["schedule_sizes"]
        assert run_record.existing_run(path, config, sizes) is not None  # not "another config"


def test_provenance_records_the_devices_and_the_mode():
    from dpe_tutorial.running import provenance

    env = provenance.environment("data")
    assert env["distribution"] == "data"
    assert env["device_count"] == len(env["devices"]) >= 1
    assert env["device"] == env["devices"][0]
    assert provenance.environment()["distribution"] == "none"


@pytest.fixture(scope="module")
def smoke_run_per_mode(tmp_path_factory):
    """The shrunk smoke run (2 rounds, 96 labels, 4 members, 3 epochs) in every mode."""
    out_root = tmp_path_factory.mktemp("distributed-runs")
    return _run_child(HERE / "distributed_run_child.py", out_root, *distribution.MODES), out_root


@pytest.mark.slow
def test_a_smoke_run_in_every_mode_finishes_close_to_the_single_device_run(smoke_run_per_mode):
    """Same seeds, so the same run up to the order of float sums across devices.

    Measured on 4 virtual CPU devices: the same labelled and acquired images in
    every round, test probabilities within 1.3e-4, the same accuracy and NLL
    within 2e-8. The tolerance allows an ensemble accuracy one test image off
    per round (an image at a near-tie may flip) and NLL within 1e-3.
    """
    runs, out_root = smoke_run_per_mode
    single = runs["none"]["rows"]
    n_test = len(np.load(out_root / "none" / "rounds" / "trial0_round0.npz")["test_probs"])
    for mode in ("data", "members"):
        rows = runs[mode]["rows"]
        assert [r["n_labeled"] for r in rows] == [r["n_labeled"] for r in single] == [48, 96]
        for index, (mine, theirs) in enumerate(zip(rows, single, strict=True)):
            tolerance = (index + 1) / n_test
            assert abs(mine["ensemble_accuracy"] - theirs["ensemble_accuracy"]) <= tolerance
            assert mine["nll"] == pytest.approx(theirs["nll"], rel=1e-3)
        environment = runs[mode]["environment"]
        assert environment["distribution"] == mode
        assert environment["devices"] == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
        assert environment["device_count"] == 4
    first = np.load(out_root / "none" / "rounds" / "trial0_round0.npz")["labelled"]
    for mode in ("data", "members"):
        mine = np.load(out_root / mode / "rounds" / "trial0_round0.npz")["labelled"]
        np.testing.assert_array_equal(mine, first)  # drawn from the seed, not the model


def test_fields_added_later_resume_old_runs_as_their_defaults():
    defaults = config_module.ExperimentConfig().to_dict()
    assert {key: defaults[key] for key in run_record._LATER_FIELDS} == run_record._LATER_FIELDS
    for path in sorted((ROOT / "results" / "active-learning").glob("*/*/config.json")):
        stored = json.loads(path.read_text())
        config = config_module.ExperimentConfig.from_dict(stored["config"])
        assert run_record.existing_run(path, config, stored["schedule_sizes"]) is not None
