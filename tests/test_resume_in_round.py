"""A run killed (SIGKILL) in the middle of a round resumes from its last finished epoch
and ends exactly as an uninterrupted run does (timings aside)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# two rounds of 20 epochs: long enough to be killed inside the first one
LONG_ROUNDS = [
    *("--set", "schedule=[100, 200]", "--set", "budget=200"),
    *("--set", "epochs=20", "--set", "width=4"),
]
EPOCHS = 2 * 20


def run_command(out: Path, quiet: bool = True) -> list[str]:
    command = [sys.executable, "-m", "dpe_tutorial", "run", "--preset", "smoke", *LONG_ROUNDS]
    return [*command, "--out", str(out), *(["--quiet"] if quiet else [])]


def read_run(folder: Path):
    table = pd.read_csv(folder / "results.csv")
    table = table.drop(columns=[c for c in table.columns if c.endswith("_seconds")])
    rounds = {
        path.name: {name: np.load(path)[name] for name in ("labelled", "acquired")}
        for path in sorted((folder / "rounds").glob("*.npz"))
    }
    return table, rounds


def session_timed(folder: Path) -> bool:
    """Whether the last session in the folder's config.json has recorded its time."""
    try:
        sessions = json.loads((folder / "config.json").read_text())["sessions"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(sessions) and sessions[-1].get("wall_seconds") is not None


@pytest.mark.slow
def test_a_run_killed_inside_a_round_resumes_from_its_last_epoch(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    # with progress bars, which must not change what is trained
    done = subprocess.run(run_command(reference, quiet=False), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epochs" in done.stderr  # the bar over a round's epochs

    process = subprocess.Popen(
        run_command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    epoch_checkpoint = killed / "checkpoints" / "trial0_round0_epoch.npz"
    deadline = time.monotonic() + 600
    # killed once an epoch is saved and the session's record of it written (just after)
    while not (epoch_checkpoint.exists() and session_timed(killed)):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # inside round 0: some of its epochs are done
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "checkpoints" / "trial0.json").exists()  # no round has finished

    done = subprocess.run(run_command(killed), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    reference_table, reference_rounds = read_run(reference)
    resumed_table, resumed_rounds = read_run(killed)
    pd.testing.assert_frame_equal(resumed_table, reference_table)
    assert resumed_rounds.keys() == reference_rounds.keys() and len(resumed_rounds) == 2
    for name, arrays in reference_rounds.items():
        for key, values in arrays.items():
            np.testing.assert_array_equal(resumed_rounds[name][key], values, err_msg=name)

    sessions = json.loads((killed / "config.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[0]["finished"] is None  # the killed session
    (resumed,) = sessions[1]["resumed"]
    assert resumed["round"].startswith("trial 0, round 0 ") and 1 <= resumed["from_epoch"] < 20
    # the killed session kept the time and the epochs it worked, up to its last save
    assert sessions[0]["wall_seconds"] > 0 and sessions[0]["epochs_trained"] >= 1
    record = json.loads((killed / "config.json").read_text())
    assert record["wall_seconds"] == pytest.approx(
        sessions[0]["wall_seconds"] + sessions[1]["wall_seconds"], abs=0.01
    )
    # the rerun trained only the epochs the killed run had not finished
    assert sessions[1]["epochs_trained"] == EPOCHS - resumed["from_epoch"] < EPOCHS
    assert not list(killed.glob("checkpoints/*_epoch.npz"))  # removed with each round's end


def test_the_batch_stream_resumed_at_an_epoch_is_the_uninterrupted_stream_from_there():
    from dpe_tutorial.running.experiment import EpochOrder

    images, labels = np.arange(10)[:, None], np.arange(10)
    whole = EpochOrder(images, labels, batch_size=4, seed=3)
    resumed = EpochOrder(images, labels, batch_size=4, seed=3, first=2)
    assert len(whole) == 3 and whole.num_batches is None  # fit stops the stream by epochs
    stream = [whole[i][1] for i in range(4 * len(whole))]
    # out of order, as a prefetching pipeline may ask: a batch depends on its number alone
    assert np.array_equal(whole[1][1], stream[1]) and np.array_equal(whole[7][1], stream[7])
    for i in range(2 * len(resumed)):
        np.testing.assert_array_equal(resumed[i][1], stream[2 * len(whole) + i])
    epochs = [np.concatenate(stream[e * 3 : e * 3 + 3]) for e in range(4)]
    assert all(sorted(epoch) == list(range(10)) for epoch in epochs)  # each image once an epoch
    assert not np.array_equal(epochs[0], epochs[1])  # a new order every epoch
