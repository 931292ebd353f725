"""What a results folder survives: stale or damaged files, a second run, other data,
diverged training, OS errors and signals, strict configs, and resuming within a round.

Each section is one case of the reliability issue. CLI behaviour is checked
through ``main`` in this process where that is enough, and through real
subprocesses where a signal or a second process is the point.
"""

from __future__ import annotations

import errno
import gc
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from dpe_tutorial import cli as cli_module
from dpe_tutorial.cli import main
from dpe_tutorial.method.choices import DEFAULT_BETA
from dpe_tutorial.running import active, data, experiment, lock, results, run_record

# two rounds of a tiny ensemble on digits: seconds
TINY = [
    *("--set", "schedule=linear-2", "--set", "budget=60", "--set", "members=2"),
    *("--set", "kl_form=exclusive"),  # the default (papers') form needs four members
    *("--set", "width=2", "--set", "epochs=2", "--set", "shift_samples=50"),
]


def run_args(out, *extra):
    return ["run", "--preset", "smoke", *TINY, *extra, "--out", str(out), "--quiet"]


def tiny_config(*extra) -> experiment.ExperimentConfig:
    assignments = [value for flag, value in zip(TINY[::2], TINY[1::2], strict=True)]
    return experiment.preset("smoke").with_overrides([*assignments, *extra])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("dpe-tutorial: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# A shell's background job (`cmd &`, as CI may be run) starts with SIGINT ignored and
# its children inherit that, while a user's terminal delivers Ctrl-C with the default
# disposition. This wrapper restores the default, which survives the exec, before
# starting the CLI (preexec_fn would run Python in a forked copy of a threaded process).
_WITH_DEFAULT_SIGNALS = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'dpe_tutorial', *sys.argv[1:]])"
)


def cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WITH_DEFAULT_SIGNALS, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def wait_for(condition, process=None, timeout=300, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process ended before {what}: {process.stderr.read()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def forbid_training_and_data(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a finished run loaded its data or trained again")

    monkeypatch.setattr(experiment, "load_data", fail)
    monkeypatch.setattr(experiment.EnsembleLearner, "fit", fail)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != lock.LOCK_NAME
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny run; tests work on copies of it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    experiment.run_experiment(tiny_config(), out, quiet=True)
    return out


@pytest.fixture
def copy_of_finished(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "run"))


# -- 1. results.csv is derived state; every file a rerun reads is checked -----


@pytest.mark.parametrize("damage", ["behind", "missing", "cut mid-row"])
def test_results_csv_is_rebuilt_from_the_checkpoints_on_every_rerun(
    damage, copy_of_finished, monkeypatch, capsys
):
    folder = copy_of_finished
    table = folder / "results.csv"
    whole = table.read_text()
    if damage == "behind":  # killed after the last round's checkpoint, before the table
        table.write_text("".join(whole.splitlines(keepends=True)[:2]))
    elif damage == "missing":
        table.unlink()
    else:
        table.write_text(whole[: len(whole) // 2])
    leftover = folder / "rounds" / ".trial0_round1.npz.0123456789ab.partial"
    leftover.write_bytes(b"half a file")  # what a SIGKILL mid-write leaves
    forbid_training_and_data(monkeypatch)  # a finished run reads no data

    assert main(run_args(folder)) == 0
    out, err = capsys.readouterr()
    assert table.read_text() == whole
    assert f"{table}" in err and "rebuilt" in err
    assert len([line for line in out.splitlines() if line.strip().startswith("0 ")]) == 2
    assert not leftover.exists()
    kept = list(folder.glob("results.csv.replaced-*"))
    if damage == "cut mid-row":  # never silently overwritten: the damaged file is kept
        assert len(kept) == 1 and kept[0].read_text() == whole[: len(whole) // 2]
        assert kept[0].name in err
    else:
        assert not kept


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "config.json": (lambda f: (f / "config.json").write_text('{"config": '), "config.json"),
    "checkpoint": (lambda f: cut_in_half(f / "checkpoints" / "trial0.json"), "trial0.json"),
    "checkpoint rows": (
        lambda f: (f / "checkpoints" / "trial0.json").write_text(
            json.dumps({**json.loads((f / "checkpoints" / "trial0.json").read_text()), "rows": 3})
        ),
        "trial0.json",
    ),
    "round file": (lambda f: cut_in_half(f / "rounds" / "trial0_round1.npz"), "trial0_round1.npz"),
    "round file gone": (
        lambda f: (f / "rounds" / "trial0_round0.npz").unlink(),
        "trial0_round0.npz",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_file_stops_the_rerun_naming_it(damage, copy_of_finished, monkeypatch, capsys):
    folder = copy_of_finished
    spoil, name = DAMAGES[damage]
    spoil(folder)
    before = snapshot(folder)
    forbid_training_and_data(monkeypatch)
    assert main(run_args(folder)) == 2
    line = error_line(capsys)
    assert name in line and "restore" in line, line
    assert snapshot(folder) == before  # nothing was rewritten


def test_a_folder_that_is_not_a_results_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not ours")
    assert main(run_args(folder)) == 2
    assert "is not empty (holiday.jpg) and is not a results folder" in error_line(capsys)


# -- 2. a lock on the folder --------------------------------------------------

HOLD = "import sys, time\nfrom dpe_tutorial.running import lock\nwith lock.hold(sys.argv[1]):\n"
HOLD += "    print('held', flush=True)\n    time.sleep(600)\n"


def test_a_second_run_on_a_folder_in_use_stops_at_once_naming_the_holder(tmp_path, capsys):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        assert main(run_args(folder)) == 2
        assert time.monotonic() - start < 10
        line = error_line(capsys)
        assert f"results folder {folder} is in use by another run (PID {holder.pid} " in line
        assert not (folder / "config.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    # the kernel released the lock with the killed process: no stale lock to clean up
    with lock.hold(folder) as held:
        assert held["pid"] == os.getpid()
        holder_info = json.loads((folder / lock.LOCK_NAME).read_text())
        assert holder_info["pid"] == os.getpid() and holder_info["host"] and holder_info["started"]
    assert not (folder / lock.LOCK_NAME).exists()  # removed on release


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    with lock.hold(tmp_path), pytest.raises(lock.FolderInUse, match=f"PID {os.getpid()} "):
        with lock.hold(tmp_path):
            pass


# -- 3. the data's fingerprint -------------------------------------------------


def write_image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 15), ("test", 5)):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / label / f"{i}.png")


def image_folder_yaml(tmp_path: Path, tree: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"dataset: image_folder\ndata_path: {tree}\nschedule: [10, 20]\nbudget: 20\n"
        "members: 2\nkl_form: exclusive\nwidth: 2\nepochs: 1\nbatch_size: 8\ntrials: 2\n"
        "shift_samples: 0\n"
    )
    return config


def test_a_rerun_on_other_data_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPE_CACHE", str(tmp_path / "cache"))
    tree = tmp_path / "images"
    write_image_folder(tree)
    config_file = image_folder_yaml(tmp_path, tree)
    config = experiment.ExperimentConfig.from_yaml(config_file)
    out = tmp_path / "run"

    def interrupt(self, images, labels):  # Ctrl-C as the first round starts training
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(experiment.EnsembleLearner, "fit", interrupt)
        with pytest.raises(KeyboardInterrupt):
            experiment.run_experiment(config, out, quiet=True)
    stored = json.loads((out / "config.json").read_text())["dataset"]["fingerprint"]
    assert stored == data.fingerprint(experiment.load_data(config))
    assert stored.startswith("sha256:")

    image = tree / "train" / "a" / "0.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(image)  # same names, other pixels
    before = snapshot(out)
    assert main(["run", "--config", str(config_file), "--out", str(out), "--quiet"]) == 2
    line = error_line(capsys)
    assert f"{out} holds a run on other data (fingerprint {stored[7:19]} -> " in line
    assert "point the config at the data the run used" in line
    assert snapshot(out) == before


# -- 4. diverged training -------------------------------------------------------


def test_diverged_training_stops_the_run_and_saves_no_row_for_it(tmp_path, capsys):
    out = tmp_path / "run"
    # the exclusive form: with it a learning rate of 1e4 blows up within the first rounds
    arguments = ["--set", "learning_rate=1e4", "--set", "epochs=4", "--set", "kl_form=exclusive"]
    assert main(run_args(out, *arguments)) == 2
    line = error_line(capsys)
    match = re.search(r"training diverged in trial 0, round (\d) \(\d+ labels\).* epoch \d", line)
    assert match, line
    assert f"lower learning_rate (now 10000) or a smaller beta (now {DEFAULT_BETA})" in line
    diverged_round = int(match[1])
    checkpoint = active.read_checkpoint(out / "checkpoints" / "trial0.json")
    assert len(checkpoint["rows"] if checkpoint else []) == diverged_round
    rows = (out / "results.csv").read_text().splitlines()[1:] if diverged_round else []
    assert len(rows) == diverged_round


def test_a_non_finite_loss_is_caught_after_its_epoch():
    check = experiment.DivergenceCheck(lambda epoch, loss: f"diverged at epoch {epoch}: {loss}")
    check.on_epoch_end(0, {"loss": 2.3})
    with pytest.raises(active.TrainingDiverged, match="diverged at epoch 3: nan"):
        check.on_epoch_end(2, {"loss": math.nan})
    assert issubclass(active.TrainingDiverged, ValueError)  # the CLI prints it as one line


def test_non_finite_predictions_stop_the_round_loop_before_its_checkpoint(tmp_path):
    class Broken(active.Learner):
        def fit(self, images, labels):
            pass

        def predict_members(self, images):
            return np.full((len(images), 2, 3), np.nan, dtype=np.float32)

    rng = np.random.default_rng(0)
    images, labels = rng.random((40, 2, 2, 1)), np.arange(40) % 3
    with pytest.raises(active.TrainingDiverged, match="round 0 \\(10 labels\\)"):
        active.run_trial(
            train_images=images,
            train_labels=labels,
            test_images=images,
            test_labels=labels,
            sizes=[10, 20],
            make_learner=lambda r, n: Broken(),
            acquisition_name="random",
            seed=0,
            checkpoint=tmp_path / "trial0.json",
        )
    assert not (tmp_path / "trial0.json").exists()


# -- 5. every error is one line, exit 2; --debug; SIGTERM -------------------------


def test_output_paths_through_files_are_one_line_errors(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    cases = [
        (run_args(a_file), f"results folder {a_file} is a file"),
        (run_args(a_file / "run"), f"cannot create results folder {a_file / 'run'}: {a_file}"),
        (["plot", str(tmp_path), "--out", str(a_file / "c.png")], f"{a_file} is a file"),
        (["plot", str(tmp_path), "--out", str(tmp_path)], "is a folder; give an image file"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in error_line(capsys)
    assert a_file.read_text() == "x"


def test_a_full_disk_is_one_line_that_says_what_to_do(tmp_path, monkeypatch, capsys):
    def full(path, content):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(results, "atomic_write", full)
    monkeypatch.setattr(run_record, "atomic_write", full)  # config.json is written there
    assert main(run_args(tmp_path / "run")) == 2
    line = error_line(capsys)
    assert "config.json: No space left on device; free some disk space" in line


@pytest.mark.slow
def test_a_real_write_error_is_one_line(tmp_path):
    # files past 1 kB fail with EFBIG (the signal that would kill the process is ignored)
    command = " ".join([sys.executable, "-m", "dpe_tutorial", *run_args(tmp_path / "run")])
    done = subprocess.run(
        ["bash", "-c", f"ulimit -f 1 && trap '' XFSZ && exec {command}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("dpe-tutorial:")]
    assert len(lines) == 1, done.stderr[-3000:]
    assert "config.json" in lines[0] and "File too large" in lines[0] and "ulimit" in lines[0]
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    missing = str(tmp_path / "missing.yaml")
    args = ["--config", missing, "--out", str(tmp_path / "run")]
    assert main(["run", *args]) == 2
    assert "Traceback" not in capsys.readouterr().err
    for argv in (["--debug", "run", *args], ["run", "--debug", *args]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err and "FileNotFoundError" in err
        assert err.strip().splitlines()[-1].startswith("dpe-tutorial: error: config file")
    monkeypatch.setenv("DPE_DEBUG", "1")
    assert main(["run", *args]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_signal_dropped_where_it_landed_is_raised_again(monkeypatch, capsys):
    # a handler's exception raised inside a garbage-collector callback (JAX has one) is
    # dropped by Python; the run must stop all the same
    def command(args):
        def callback(phase, info):
            gc.callbacks.remove(callback)
            os.kill(os.getpid(), signal.SIGTERM)  # handled here, in the callback

        gc.callbacks.append(callback)
        gc.collect()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.01)
        return 0

    monkeypatch.setattr(cli_module, "_presets", command)
    assert main(["presets"]) == 143
    err = capsys.readouterr().err
    assert "terminated (SIGTERM); rerun the same command to resume" in err
    assert "Exception ignored" not in err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "message"),
    [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "SIGINT"],
)
def test_sigterm_stops_like_ctrl_c_and_a_rerun_resumes(signum, code, message, tmp_path):
    out = tmp_path / "run"
    process = cli(*run_args(out, "--set", "epochs=30"))
    wait_for(lambda: list(out.glob("checkpoints/*_epoch.npz")), process, what="an epoch")
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err[-3000:]
    assert f"dpe-tutorial: {message}; rerun the same command to resume" in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert not list(out.rglob("*.partial"))
    with lock.hold(out):  # released
        pass
    if signum == signal.SIGTERM:
        table = experiment.run_experiment(tiny_config("epochs=30"), out, quiet=True)
        assert len(table) == 2
        sessions = json.loads((out / "config.json").read_text())["sessions"]
        assert sessions[-1]["resumed"] and sessions[-1]["resumed"][0]["from_epoch"] >= 1


# -- 6. strict configs, paths and data messages ------------------------------------


def test_yaml_config_files_are_read_strictly(tmp_path, capsys):
    def refused(text: str | bytes, message: str, name="config.yaml"):
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        assert main(["run", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
        line = error_line(capsys)
        assert str(path) in line and message in line, line

    refused("", "is empty; write the fields to change as field: value lines")
    refused("# only a comment\n", "is empty")
    refused("epochs: 3\nbudget: 60\nepochs: 4\n", "gives 'epochs' twice (lines 1 and 3); keep one")
    refused(b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not a text file", name="picture.yaml")
    refused("- epochs\n", "must be a mapping of field: value, got list")
    (tmp_path / "folder.yaml").mkdir()
    assert main(["run", "--config", str(tmp_path / "folder.yaml"), "--out", "x"]) == 2
    assert "is a folder; give a YAML file" in error_line(capsys)
    assert not (tmp_path / "run").exists()

    numbers = tmp_path / "numbers.yaml"
    numbers.write_text("learning_rate: 1e-2\nbeta: 1e-5\nname: 1e3\n")
    config = experiment.ExperimentConfig.from_yaml(numbers)
    assert (config.learning_rate, config.beta, config.name) == (0.01, 1e-5, "1e3")


def test_an_output_folder_in_the_data_is_refused(tmp_path, capsys):
    tree = tmp_path / "images"
    write_image_folder(tree)
    config_file = image_folder_yaml(tmp_path, tree)
    before = sorted(tree.rglob("*"))
    for out in (tree, tree / "results", tree / "train" / "x"):
        assert main(["run", "--config", str(config_file), "--out", str(out), "--quiet"]) == 2
        assert f"results folder {out} is inside the dataset {tree}" in error_line(capsys)
    assert sorted(tree.rglob("*")) == before


def test_a_truncated_zip_is_called_damaged_and_named(tmp_path):
    tree = tmp_path / "images"
    write_image_folder(tree)
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(tree.rglob("*.png")):
            out.write(path, path.relative_to(tree).as_posix())
    cut_in_half(archive)
    unnamed = Path(shutil.copy(archive, tmp_path / "images.data"))  # a zip by its bytes only
    for path in (archive, unnamed):
        message = re.escape(f"zip file {path} is damaged or truncated")
        with pytest.raises(ValueError, match=message):
            data.load_image_folder(path, cache_dir=tmp_path / "cache")
        with pytest.raises(ValueError, match=message):
            data.load_cifar10(path, cache_dir=tmp_path / "cache")


def test_an_undecodable_image_is_named_not_its_buffer(tmp_path):
    tree = tmp_path / "images"
    write_image_folder(tree)
    (tree / "train" / "b" / "3.png").write_bytes(b"this is no picture")
    with pytest.raises(ValueError) as info:
        data.load_image_folder(tree, cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "BytesIO" not in message and "object at 0x" not in message
    assert message.count("train/b/3.png") == 2, message  # the file, and in Pillow's reason


# -- 7. resuming within a round (the SIGKILL test is in test_resume_in_round.py) ---------


class Interrupted(Exception):
    pass


def digits_learner(config, path, session=None, stop_after=None, interval=0.0, saved=None):
    """An EnsembleLearner for a round of 64 digits; ``stop_after`` raises after that epoch.

    It saves after every epoch unless ``interval`` (seconds) says otherwise;
    ``saved`` (a list) collects the epochs saved.
    """

    class Learner(experiment.EnsembleLearner):
        checkpoint_interval = interval

        def _save(self, epoch, identity):
            super()._save(epoch, identity)
            if saved is not None:
                saved.append(epoch)
            if epoch == stop_after:
                raise Interrupted

    split = data.load_digits()
    mean, std = data.channel_statistics(split.train.images)
    keras.utils.set_random_seed(5)  # as run_experiment seeds each round
    learner = Learner(
        config, (8, 8, 1), 10, mean, std, True, seed=5, epoch_checkpoint=path, session=session
    )
    return learner, split.train.images[:64], split.train.labels[:64]


def state_of(learner) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for v in learner._state()]


@pytest.mark.keras_backend
def test_an_epoch_checkpoint_resumes_to_the_uninterrupted_state(tmp_path, capsys):
    config = tiny_config("epochs=4", "augment=true", "batch_size=16")
    learner, images, labels = digits_learner(config, tmp_path / "whole.npz")
    learner.fit(images, labels)
    whole = state_of(learner)
    seed_states = [v.path for v in learner._state() if "seed_generator" in v.path]
    assert len(seed_states) >= 2  # the random crop and flip: saved with the weights
    assert any("iteration" in v.path for v in learner._state())  # drives the LR schedule

    path = tmp_path / "stopped.npz"
    learner, images, labels = digits_learner(config, path, stop_after=2)
    with pytest.raises(Interrupted):
        learner.fit(images, labels)
    with np.load(path) as stored:
        assert json.loads(str(stored["meta"]))["epoch"] == 2
    session = {"epochs_trained": 0, "resumed": []}
    learner, images, labels = digits_learner(config, path, session)
    learner.fit(images, labels)
    assert session == {"epochs_trained": 2, "resumed": [{"round": "this round", "from_epoch": 2}]}
    for a, b, variable in zip(whole, state_of(learner), learner._state(), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=variable.path)

    # a large state is saved after the first and last epochs and at most once an interval
    saved = []
    learner, images, labels = digits_learner(config, tmp_path / "s.npz", interval=1e9, saved=saved)
    learner.fit(images, labels)
    assert saved == [1, 4]

    # a damaged epoch checkpoint is reported, and the round starts again rather than resume wrongly
    cut_in_half(path)
    learner, images, labels = digits_learner(config, path)
    learner.model = learner._build(len(images))
    assert learner._restore(learner._identity(images, labels)) == 0
    assert f"epoch checkpoint {path} is unusable (BadZipFile: " in capsys.readouterr().err
