"""The dpe-tutorial command line: bad input, plotting, and a real kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpe_tutorial.cli import main

# a small smoke run: four rounds on digits in seconds
QUICK = ["--set", "budget=120", "--set", "epochs=3", "--set", "width=4"]


def cli(*args, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "dpe_tutorial", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_presets_are_a_table_with_a_column_per_preset_and_beta_and_kl_form(capsys):
    from dpe_tutorial.method.choices import DEFAULT_BETA, DEFAULT_KL_FORM
    from dpe_tutorial.running.config import PRESETS

    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["field", *PRESETS]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:] if line.strip()}
    # beta and kl_form are set by no preset: shown anyway, with their defaults
    assert rows["beta"] == [DEFAULT_BETA] * len(PRESETS)
    assert rows["kl_form"] == [DEFAULT_KL_FORM] * len(PRESETS)
    assert rows["dataset"] == [PRESETS[name]["dataset"] for name in PRESETS]
    assert "momentum" not in rows  # the same in every preset: left to `fields`
    assert "{" not in "\n".join(lines)  # not JSON


def test_fields_lists_every_config_field_with_its_default(capsys):
    import dataclasses

    from dpe_tutorial.running.config import FIELD_DOCS, ExperimentConfig

    names = [field.name for field in dataclasses.fields(ExperimentConfig)]
    assert sorted(FIELD_DOCS) == sorted(names), "document each config field in FIELD_DOCS"
    for allowed, meaning in FIELD_DOCS.values():
        assert allowed and meaning and "\n" not in meaning
    assert main(["fields"]) == 0
    out = capsys.readouterr().out
    listed = [
        line.split()[0]
        for line in out.splitlines()[1:]
        if line.startswith("  ") and not line.startswith("      ")
    ]
    assert listed == names
    assert "  kl_form " in out and "exclusive | inclusive | paper" in out


def test_run_help_points_to_the_fields_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "dpe-tutorial fields" in out
    assert "--set" in out and "beta=" in out


def test_commands_that_do_not_train_import_no_backend():
    code = """
import contextlib, io, sys
import dpe_tutorial, dpe_tutorial.running.config
from dpe_tutorial.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["presets"]) == 0
    assert main(["fields"]) == 0
    try:
        main(["run", "--help"])
    except SystemExit:
        pass
    # a config that fails its checks answers before the backend is imported
    assert main(["run", "--preset", "smoke", "--set", "colour=red", "--out", "x"]) == 2
from dpe_tutorial.figures import plots
loaded = [name for name in ("keras", "tensorflow", "jax", "torch") if name in sys.modules]
assert not loaded, loaded
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_built_in_member_names_are_the_models():
    from dpe_tutorial.method import choices, models

    assert set(choices.BUILTIN_MEMBERS) <= set(models.MEMBERS)
    assert set(choices.member_names()) == set(models.MEMBERS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--preset", "smoke", "--set", "epochs"], "--set takes key=value"),
        (["--preset", "smoke", "--set", "colour=red"], "unknown config field(s) colour"),
        (["--preset", "smoke", "--set", "budget=4000"], "'budget' (4000) is larger than the pool"),
        (["--config", "missing.yaml"], "config file missing.yaml does not exist"),
    ],
)
def test_bad_input_exits_with_a_one_line_reason(args, message, tmp_path, capsys):
    assert main(["run", *args, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dpe-tutorial: error: ")
    assert message in err
    assert len(err.splitlines()) == 1


def test_missing_data_exits_with_a_one_line_reason(tmp_path):
    done = cli(
        "run",
        "--preset",
        "cifar10-smoke",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
        env={"DPE_DATA": str(tmp_path / "no-such-cifar")},
    )
    assert done.returncode == 2
    # TensorFlow may log to stderr first; ours is exactly one line
    error = [line for line in done.stderr.splitlines() if line.startswith("dpe-tutorial:")]
    assert len(error) == 1 and error[0].startswith("dpe-tutorial: error: ")
    assert "no-such-cifar" in error[0]
    assert not (tmp_path / "run" / "results.csv").exists()


def read_run(folder: Path):
    table = pd.read_csv(folder / "results.csv")
    table = table.drop(columns=["train_seconds", "acquire_seconds"])
    labelled = [np.load(path)["labelled"] for path in sorted((folder / "rounds").glob("*.npz"))]
    return table, labelled


@pytest.mark.slow
def test_a_run_killed_mid_round_resumes_to_the_uninterrupted_result(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    done = cli("run", "--preset", "smoke", *QUICK, "--out", str(reference), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dpe_tutorial",
            "run",
            "--preset",
            "smoke",
            *QUICK,
            "--out",
            str(killed),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "checkpoints" / "trial0.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # results.csv is written right after a round's checkpoint
        if (killed / "results.csv").exists():
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    else:
        pytest.fail("no round finished in time")
    # round 2 is now training: kill it where it stands
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    rows_at_kill = len(json.loads(checkpoint.read_text())["rows"])
    assert 1 <= rows_at_kill < 4
    # the table of the rounds done so far is there, whole
    assert 1 <= len(pd.read_csv(killed / "results.csv")) <= rows_at_kill

    done = cli("run", "--preset", "smoke", *QUICK, "--out", str(killed), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    reference_table, reference_labelled = read_run(reference)
    resumed_table, resumed_labelled = read_run(killed)
    assert len(resumed_table) == 4
    pd.testing.assert_frame_equal(resumed_table, reference_table)
    for a, b in zip(resumed_labelled, reference_labelled, strict=True):
        np.testing.assert_array_equal(a, b)
    sessions = json.loads((killed / "config.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0]["finished"] is None  # the killed session

    # plotting the two runs
    figure = tmp_path / "curves.png"
    done = cli("plot", str(reference), str(killed), "--out", str(figure))
    assert done.returncode == 0, done.stderr[-2000:]
    assert figure.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "before", "after"),
    [
        (["presets"], None, "2"),  # silenced by default
        (["--verbose", "presets"], None, None),  # --verbose keeps the backend's logging
        (["--debug", "presets"], None, None),
        (["presets"], "0", "0"),  # the user's own setting wins
    ],
)
def test_backend_logging_is_quiet_unless_asked_for(args, before, after, monkeypatch, capsys):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    if before is not None:
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", before)
    assert main(args) == 0
    assert os.environ.get("TF_CPP_MIN_LOG_LEVEL") == after


def test_a_finished_round_is_one_line():
    from dpe_tutorial.running import progress

    row = {
        "round": 1,
        "n_labeled": 60,
        "ensemble_accuracy": 0.51234,
        "nll": 1.5,
        "train_seconds": 3.21,
    }
    line = progress.round_line(0, 4, row)
    assert line == (
        "trial 0 round 2/4: 60 labels, ensemble accuracy 0.5123, NLL 1.5000, trained in 3.2 s"
    )
