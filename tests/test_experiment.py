"""ExperimentConfig validation, presets, and the results folder that run_experiment writes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.method.choices import DEFAULT_BETA, DEFAULT_KL_FORM
from dpe_tutorial.running import experiment, results
from dpe_tutorial.running.config import preset, run_slug
from dpe_tutorial.running.experiment import ExperimentConfig

TINY = {
    "dataset": "digits",
    "schedule": "linear-2",
    "budget": 60,
    "members": 4,
    "member": "small_cnn",
    "width": 2,
    "epochs": 2,
    "batch_size": 32,
}


def test_presets_are_valid_and_match_the_protocol():
    assert set(experiment.PRESETS) == {
        "few-labels",
        "mnist",
        "smoke",
        "cifar10-smoke",
        "cifar10-cpu",
        "linear-4",
    }
    # the few-labels presets train the recipe's fixed number of steps, whatever the labels
    for name in ("few-labels", "mnist"):
        config = experiment.preset(name)
        assert (config.steps, config.optimizer, config.member) == (300, "adam", "gal_cnn")
    # the query's default draws its batch by power sampling (results/labelling-loop)
    few = experiment.preset("few-labels")
    assert (few.acquisition, few.selection) == ("mutual_information", "power")
    mnist = experiment.preset("mnist")
    assert mnist.selection == "top_k"  # the MNIST study's DPE-with-BALD arm
    sizes = experiment.schedule_sizes(mnist)
    assert (sizes[0], sizes[1], sizes[-1], mnist.initial_labels) == (20, 40, 400, "balanced")
    linear = experiment.preset("linear-4")
    assert (linear.dataset, linear.members, linear.member, linear.width) == (
        "cifar10",
        8,
        "resnet18",
        64,
    )
    assert (linear.schedule, linear.budget, linear.acquisition) == (
        "linear-4",
        16000,
        "predictive_entropy",
    )
    assert linear.augment
    assert experiment.preset("smoke").dataset == "digits"
    with pytest.raises(ValueError, match="unknown preset 'big'; choose one of few-labels"):
        experiment.preset("big")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "emnist"}, "'dataset' must be one of digits, cifar10, mnist, image_folder"),
        ({"steps": 0}, "'steps' must be a whole number >= 1"),
        ({"initial_labels": "stratified"}, "'initial_labels' must be one of random, balanced"),
        ({"pool_subset": 0}, "'pool_subset' must be a whole number >= 1"),
        ({"selection": "gumbel"}, "'selection' must be one of top_k, power"),
        ({"passes": 0}, "'passes' must be a whole number >= 1"),
        ({"passes": 20}, "'passes' > 1 draws Monte Carlo dropout passes, which needs a member"),
        ({"member_predictions": 1}, "'member_predictions' must be true or false"),
        ({"dataset": "image_folder"}, "'data_path' must be the image folder"),
        ({"data_path": "x.zip"}, "'data_path' must be null for dataset digits"),
        ({"budget": 0}, "'budget' must be a whole number >= 1"),
        ({"budget": 2.5}, "'budget' must be a whole number"),
        ({"schedule": "linear-0"}, "'schedule' must be a valid schedule"),
        ({"schedule": [30, 20]}, "'schedule' must be a valid schedule"),
        ({"members": 1}, "'members' must be at least 2 when beta is not 0"),
        (
            {"members": 3, "kl_form": "paper"},
            "'members' must be at least 4 for kl_form 'paper', got 3: .* use more members, "
            "kl_form='exclusive' or beta=0",
        ),
        ({"members": 2, "kl_form": "inclusive"}, "'members' must be at least 4 for kl_form"),
        ({"member": "vgg"}, "'member' must be one of resnet18, gal_cnn, small_cnn"),
        ({"beta": -1}, "'beta' must be a finite number >= 0"),
        ({"beta": "big"}, "'beta' must be a finite number >= 0, \"elbo\""),
        (
            {"beta": "elbo*-1"},
            '\'beta\' must be a finite number >= 0, "elbo" \\(E / N\\) or "elbo\\*F"',
        ),
        ({"kl_form": "kl"}, "'kl_form' must be one of exclusive, inclusive, paper, got 'kl'"),
        ({"acquisition": "bald"}, "'acquisition' must be one of predictive_entropy"),
        ({"optimizer": "rmsprop"}, "'optimizer' must be one of sgd, adam"),
        ({"learning_rate": 0}, "'learning_rate' must be a finite number > 0"),
        ({"augment": "yes"}, "'augment' must be true or false"),
        ({"trials": 0}, "'trials' must be a whole number >= 1"),
        ({"shift_samples": -1}, "'shift_samples' must be a whole number >= 0"),
        ({"layout": "vmap"}, "'layout' must be one of branches, grouped"),
        ({"colour": "red"}, "unknown config field\\(s\\) colour; valid fields are acquisition"),
    ],
)
def test_bad_fields_are_named_with_their_allowed_values(change, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict({**TINY, **change})


@pytest.mark.parametrize(("old", "new"), [("forward", "exclusive"), ("reverse", "inclusive")])
def test_the_old_kl_form_names_are_refused_with_the_new_name(old, new):
    message = f"config field 'kl_form' '{old}' was renamed: use '{new}'"
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_dict({**TINY, "kl_form": old})
    with pytest.raises(ValueError, match=f"renamed: use '{new}'"):
        ExperimentConfig.from_dict(TINY).with_overrides([f"kl_form={old}"])


def test_overrides_parse_values_like_yaml():
    assert ExperimentConfig.from_dict(TINY).with_overrides(["beta=1e-5"]).beta == 1e-5
    config = experiment.preset("smoke").with_overrides(
        ["beta=0", "acquisition=random", "schedule=[50, 100]", "budget=100", "augment=true"]
    )
    assert config.beta == 0 and config.acquisition == "random" and config.augment is True
    assert config.schedule == (50, 100)
    assert config.method == "random"
    for bad in ("beta", "=3", "epochs=[1"):
        with pytest.raises(ValueError):
            config.with_overrides([bad])


def test_yaml_configs(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("dataset: digits\nbudget: 80\nschedule: [40, 80]\nmembers: 4\n")
    assert ExperimentConfig.from_yaml(good).schedule == (40, 80)
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [digits\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        ExperimentConfig.from_yaml(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ExperimentConfig.from_yaml(tmp_path / "missing.yaml")


def test_method_labels_tell_the_baselines_apart():
    assert ExperimentConfig.from_dict(TINY).method == (
        f"DPE {DEFAULT_KL_FORM}, beta={DEFAULT_BETA} (predictive_entropy)"  # the default
    )
    base = ExperimentConfig.from_dict({**TINY, "kl_form": "exclusive", "beta": "elbo*0.1"})
    assert base.method == "DPE exclusive, beta=elbo*0.1 (predictive_entropy)"
    assert (
        base.with_overrides(["beta=elbo"]).method == "DPE exclusive, beta=elbo (predictive_entropy)"
    )
    assert base.with_overrides(["beta=1e-5", "kl_form=paper"]).method == (
        "DPE paper, beta=1e-05 (predictive_entropy)"
    )
    assert base.with_overrides(["beta=0"]).method == "plain ensemble (predictive_entropy)"
    assert base.with_overrides(["acquisition=random"]).method == "random"


def test_configure_applies_only_the_parameters_that_are_set():
    config = experiment.configure("smoke", rounds=2, budget=100, beta=None, epochs=3)
    smoke = experiment.preset("smoke")
    assert (config.schedule, config.budget, config.epochs) == ("linear-2", 100, 3)
    assert config.beta == smoke.beta and config.members == smoke.members
    assert experiment.configure("cifar10-smoke") == experiment.preset("cifar10-smoke")
    with pytest.raises(ValueError, match="rounds must be a whole number >= 1"):
        experiment.configure("smoke", rounds=0)
    with pytest.raises(ValueError, match="unknown config field\\(s\\) budgt"):
        experiment.configure("smoke", budgt=10)
    with pytest.raises(ValueError, match="unknown preset 'smok'"):
        experiment.configure("smok")


def test_baselines_share_everything_but_the_method():
    config = ExperimentConfig.from_dict({**TINY, "kl_form": "exclusive", "beta": "elbo*0.1"})
    dpe, random, plain = experiment.with_baselines(config)
    assert dpe is config
    assert random.to_dict() == {**config.to_dict(), "acquisition": "random"}
    assert plain.to_dict() == {**config.to_dict(), "beta": 0.0}
    assert [experiment.run_slug(c) for c in (dpe, random, plain)] == [
        "dpe-exclusive-elbo-x0.1-predictive_entropy",
        "dpe-exclusive-elbo-x0.1-random",
        "ensemble-predictive_entropy",
    ]
    # a config that already is a baseline is not run twice
    assert len(experiment.with_baselines(random)) == 2
    assert experiment.run_slug(config.with_overrides(["beta=1e-5", "kl_form=paper"])) == (
        "dpe-paper-1e-05-predictive_entropy"
    )
    assert experiment.run_slug(config.with_overrides(["beta=elbo"])) == (
        "dpe-exclusive-elbo-predictive_entropy"
    )
    assert experiment.run_slug(config.with_overrides(["kl_form=inclusive"])) == (
        "dpe-inclusive-elbo-x0.1-predictive_entropy"
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    config = ExperimentConfig.from_dict({**TINY, "trials": 2})
    table = experiment.run_experiment(config, out, quiet=True)
    return config, out, table


@pytest.mark.keras_backend
def test_the_results_folder(tiny_run):
    config, out, table = tiny_run
    assert list(table.columns[:10]) == list(results.RESULT_COLUMNS)
    assert list(table["trial"]) == [0, 0, 1, 1]
    assert list(table["n_labeled"]) == [30, 60, 30, 60]
    assert table["ensemble_accuracy"].between(0, 1).all()
    assert (table["train_seconds"] > 0).all()
    record = json.loads((out / "config.json").read_text())
    assert record["config"] == config.to_dict()
    assert record["schedule_sizes"] == [30, 60]
    assert "digits" in record["dataset"]["provenance"]
    for key in ("backend", "keras", "device", "git_commit", "lock_sha256", "numpy", "python"):
        assert key in record["environment"]
    assert record["sessions"][0]["finished"] is not None and record["wall_seconds"] > 0
    # every session names its own commit, machine and backend (a run can span several)
    session = record["sessions"][0]
    assert session["git_commit"] == record["environment"]["git_commit"]
    assert session["lock_sha256"] == record["environment"]["lock_sha256"]
    assert session["machine"].endswith(f"{os.cpu_count()} cores")
    assert session["cpu_units"] == record["environment"]["cpu_units"]  # two EPYCs differ here
    assert session["backend"] == keras.backend.backend()
    # the rounds it finished, its oneDNN state (TensorFlow only) and its precision
    assert session["rounds"] == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert (session["onednn"] is None) == (keras.backend.backend() != "tensorflow")
    assert session["precision"] == "float32"
    first = np.load(out / "rounds" / "trial0_round0.npz")
    second = np.load(out / "rounds" / "trial0_round1.npz")
    assert len(first["labelled"]) == 30 and len(first["acquired"]) == 30
    np.testing.assert_array_equal(
        second["labelled"], np.concatenate([first["labelled"], first["acquired"]])
    )
    assert first["test_probs"].shape == (360, 10)
    assert len(second["acquired"]) == 0  # nothing is acquired after the last round
    # trials draw different initial sets
    other = np.load(out / "rounds" / "trial1_round0.npz")
    assert set(other["labelled"]) != set(first["labelled"])
    assert not list(out.rglob("*.partial"))


@pytest.mark.keras_backend
def test_a_finished_run_resumes_without_training(tiny_run, monkeypatch):
    config, out, table = tiny_run

    def must_not_train(self, images, labels):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(experiment.EnsembleLearner, "fit", must_not_train)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    again = experiment.run_experiment(config, out, quiet=True)
    pd.testing.assert_frame_equal(again, table)
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # read-only: no session is recorded for a finished run


def test_a_folder_of_another_config_is_refused(tiny_run):
    config, out, _ = tiny_run
    before = (out / "results.csv").read_text()
    with pytest.raises(ValueError, match="holds a run of another config \\(differs in epochs\\)"):
        experiment.run_experiment(config.with_overrides(["epochs=3"]), out, quiet=True)
    assert (out / "results.csv").read_text() == before


def test_run_comparison_puts_each_method_in_its_own_folder(tmp_path):
    from dpe_tutorial.figures import plots

    config = ExperimentConfig.from_dict(
        {**TINY, "epochs": 1, "name": "tiny", "kl_form": "exclusive", "beta": "elbo*0.1"}
    )
    folders = experiment.run_comparison(experiment.with_baselines(config), tmp_path, quiet=True)
    assert [f.relative_to(tmp_path).as_posix() for f in folders] == [
        "tiny/dpe-exclusive-elbo-x0.1-predictive_entropy",
        "tiny/dpe-exclusive-elbo-x0.1-random",
        "tiny/ensemble-predictive_entropy",
    ]
    runs = plots.find_runs(tmp_path)
    assert [run.path for run in runs] == sorted(folders)
    assert sorted(run.method for run in runs) == sorted(
        c.method for c in experiment.with_baselines(config)
    )
    split = experiment.load_data(config)
    assert (len(split.train), len(split.test)) == (1437, 360)


def test_a_budget_larger_than_the_pool_is_refused(tmp_path):
    config = ExperimentConfig.from_dict({**TINY, "budget": 5000, "schedule": "linear-2"})
    with pytest.raises(
        ValueError, match="'budget' \\(5000\\) is larger than the pool \\(1437 images\\)"
    ):
        experiment.run_experiment(config, tmp_path / "run", quiet=True)


SHARED_CIFAR10 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.zip"


def test_a_relative_data_path_is_read_from_the_folder_the_run_started_in(tmp_path, monkeypatch):
    if not SHARED_CIFAR10.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared CIFAR-10 copy at {SHARED_CIFAR10}")
        pytest.skip(f"no shared CIFAR-10 copy at {SHARED_CIFAR10}")
    root = SHARED_CIFAR10.parents[2]  # the folder that holds shared/
    relative = SHARED_CIFAR10.relative_to(root).as_posix()
    config = experiment.preset("cifar10-smoke").with_overrides([f"data_path={relative}"])
    monkeypatch.chdir(tmp_path)  # as the book, which runs in book/, not where the run started
    with pytest.raises((OSError, ValueError)):
        experiment.load_data(config)
    split = experiment.load_data(config, root=root)
    assert (len(split.train), len(split.test)) == (config.train_subset, config.test_subset)


@pytest.mark.slow
def test_the_cifar10_smoke_preset_runs_on_the_shared_copy(tmp_path, monkeypatch):
    if not SHARED_CIFAR10.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared CIFAR-10 copy at {SHARED_CIFAR10}")
        pytest.skip(f"no shared CIFAR-10 copy at {SHARED_CIFAR10}")
    monkeypatch.setenv("DPE_DATA", str(SHARED_CIFAR10))
    monkeypatch.setenv("DPE_CACHE", str(tmp_path / "cache"))
    # the preset's last round alone (1,000 labels, 10 epochs, its members): every round trains
    # fresh members, most of this test's cost; acquisition on the copy is the tiny `make
    # reproduce` test's (tests/test_notebooks.py)
    config = experiment.preset("cifar10-smoke").with_overrides(["schedule=linear-1"])
    table = experiment.run_experiment(config, tmp_path / "run", quiet=True)
    assert list(table["n_labeled"]) == [1000]
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["dataset"]["provenance"].startswith("CIFAR-10 (JPEG copy)")
    assert (record["dataset"]["pool_size"], record["dataset"]["test_size"]) == (5000, 1000)
    # narrow members and 1,000 labels: modest, but clearly better than chance (0.1)
    assert table["ensemble_accuracy"].iloc[-1] > 0.2


@pytest.mark.slow
@pytest.mark.keras_backend
def test_the_linear4_settings_run_end_to_end_on_a_tiny_budget(tmp_path):
    # everything that makes linear-4 differ from smoke (ResNet-18, bfloat16 mixed precision,
    # augmentation, its optimiser and batch size), shrunk to digits, a few steps and two rounds
    # (each round compiles a fresh model: the cost of this test, on JAX above all)
    config = experiment.preset("linear-4").with_overrides(
        [
            "dataset=digits",
            "schedule=linear-2",
            "budget=64",
            "members=4",
            "width=2",
            "epochs=1",
            "eval_batch_size=256",
        ]
    )
    assert config.mixed_precision and config.augment and config.member == "resnet18"
    table = experiment.run_experiment(config, tmp_path / "run", quiet=True)
    assert list(table["n_labeled"]) == [32, 64]
    assert np.isfinite(table["nll"]).all()


def test_mc_dropout_and_power_sampling_have_their_own_names():
    mc = ExperimentConfig.from_dict(
        {
            **TINY,
            "member": "gal_cnn",
            "members": 1,
            "beta": 0,
            "passes": 20,
            "acquisition": "mutual_information",
        }
    )
    assert run_slug(mc) == "mc-dropout-mutual_information"
    assert mc.method == "MC dropout (mutual_information)"
    power = ExperimentConfig.from_dict(
        {**TINY, "acquisition": "mutual_information", "selection": "power"}
    )
    assert run_slug(power).endswith("-mutual_information-power")
    assert power.method.endswith("(mutual_information, power)")
    # random acquisition samples uniformly whatever the selection says
    assert run_slug(dataclasses.replace(power, acquisition="random")).endswith("-random")


def test_steps_fix_the_updates_of_a_round_whatever_its_size():
    from dpe_tutorial.running import round_length

    assert round_length.round_epochs(20, 128, epochs=15, steps=None) == 15
    assert round_length.round_epochs(20, 128, epochs=15, steps=300) == 300  # one batch an epoch
    assert round_length.round_epochs(400, 128, epochs=15, steps=300) == 75  # four an epoch
    assert round_length.round_epochs(2000, 32, epochs=15, steps=100) == 2  # rounded up
    assert round_length.round_steps(400, 128, epochs=15, steps=300) == 300


def test_too_few_optimizer_steps_are_named_with_the_way_out():
    from dpe_tutorial.running import round_length

    # the case: 15 epochs of 20 labels at batch 32 are 15 steps
    warning = round_length.few_steps_warning(20, 32, epochs=15, steps=None)
    assert warning.startswith("warning: 20 labels at batch_size 32 for 15 epoch(s) make 15 ")
    assert "under 100" in warning and "set steps" in warning
    assert round_length.few_steps_warning(20, 128, epochs=15, steps=300) is None
    assert round_length.few_steps_warning(2000, 32, epochs=2, steps=None) is None  # 126 steps
    # a steps setting is named as such: 50 steps of 20 labels
    assert round_length.few_steps_warning(20, 128, epochs=15, steps=50).startswith(
        "warning: steps 50 make 50 optimizer step(s) a round"
    )


@pytest.mark.parametrize("value, state", [("0", "off"), ("1", "on"), ("false", "off")])
def test_the_onednn_state_is_read_from_the_environment(monkeypatch, value, state):
    from dpe_tutorial.running import provenance

    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", value)
    assert provenance.onednn_state("tensorflow") == state
    assert provenance.onednn_state("jax") is None


def test_without_the_variable_the_onednn_state_follows_the_cpu(monkeypatch):
    from dpe_tutorial.running import provenance

    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    avx2_only = "flags\t\t: fpu sse2 avx avx2 fma\n"
    assert provenance.onednn_state("tensorflow", avx2_only) == "default: off for this CPU"
    vnni = "flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni\n"
    assert provenance.onednn_state("tensorflow", vnni) == "default: on for this CPU"
    # what TensorFlow itself decided in this process, where the test can ask it
    port = pytest.importorskip("tensorflow.python.util._pywrap_util_port")
    if keras.backend.backend() == "tensorflow" and os.path.exists("/proc/cpuinfo"):
        expected = "on" if port.IsMklEnabled() else "off"
        assert provenance.onednn_state("tensorflow") == f"default: {expected} for this CPU"


def test_the_cifar10_study_presets_store_every_member_s_test_predictions():
    # later analyses re-read the members instead of rerunning a study (issue [2/6])
    for name in ("cifar10-cpu", "linear-4"):
        assert preset(name).member_predictions, name
