"""The matcher behind the book's page-text check: log noise and build-machine paths, not prose."""

from __future__ import annotations

import pytest
from page_text import noise

TENSORFLOW = (
    "WARNING:tensorflow:5 out of the last 64 calls to <function TensorFlowTrainer."
    "make_predict_function.<locals>.one_step_on_data_distributed at 0x7f29a4a01300> "
    "triggered tf.function retracing. Tracing is expensive"
)


@pytest.mark.parametrize(
    "text, kind, found",
    [
        (TENSORFLOW, "TensorFlow log", "'WARNING:tensorflow'"),
        ("W0000 00:00:1712345678.123456  4242 cpu_feature_guard.cc:210] This", "", "cpu_fe"),
        ("I0000 00:00:1712345678.1 42 gpu_device.cc:2022] Created device", "TensorFlow", "I0"),
        (
            "Copy to clipboardE1129 21:58:49.123456  4242 cuda_dnn.cc:8] Unable",
            "TensorFlow log",
            "'E1129",
        ),
        ("WARNING: All log messages before absl::InitializeLog() is called", "", "'absl'"),
        ("oneDNN custom operations are on. You may see", "TensorFlow log", "oneDNN"),
        ("/usr/lib/python3/foo.py:3: UserWarning: the thing", "Python warning", "UserWarning"),
        ("<dpe_tutorial.running.tracing._DropRetracing at 0x7fe4dd380310>", "object repr", "_Drop"),
        ("<object object at 0x7f0a1b2c3d40>", "object repr", "'<object object at"),
        ("runs in /tmp/bookcheck/_build/runs/smoke", "build-machine path", "'/tmp/'"),
        ("see /work/main/results for", "build-machine path", "'/work/'"),
        ("cache at /home/ann/.keras", "build-machine path", "'/home/'"),
        ("cache at /root/.keras/datasets", "build-machine path", "'/root/'"),
        ("from file:///tmp/x.png", "build-machine path", "'/tmp/'"),
        (".venv/lib/python3.11/site-packages/keras/src/x.py", "build-machine path", "site-"),
        ("/usr/lib/python3/dist-packages/numpy", "build-machine path", "'dist-packages'"),
    ],
)
def test_noise_is_found_and_named(text, kind, found):
    hits = noise(text)
    assert hits, text
    assert hits[0].startswith(kind) and found in hits[0], hits


def test_each_hit_quotes_its_context():
    [first, second] = [h for h in noise(TENSORFLOW) if "retracing" in h or "WARNING" in h]
    assert first.startswith("TensorFlow log 'WARNING:tensorflow' in: …WARNING:tensorflow:5 out")
    assert second.startswith("TensorFlow log 'retracing' in: …")
    assert "triggered tf.function retracing" in second


def test_the_machine_own_folders_are_found_whole():
    paths = ["/srv/ci/dpe-tutorial", "/"]  # "/" alone is no path to look for
    [hit] = noise("wrote /srv/ci/dpe-tutorial/_build/runs/x and /srv/ci/dpe-tutorial-2", paths)
    assert "'/srv/ci/dpe-tutorial'" in hit and "/_build/runs" in hit
    assert noise("nothing here", ["/"]) == []


@pytest.mark.parametrize(
    "text",
    [
        "The evidence lower bound is a lower bound on log p(x); retraining is not needed.",
        "One `fit` call per round, so Keras traces the train step once.",
        "See https://github.com/home/tmp/ and https://example.org/work/ for more.",
        "a warning, a UserWarning, and the word Warning alone are prose",
        "the ~/tmp/ folder and ./work/ relative paths name no machine",
        "TensorFlow and Abseil are libraries; tensorflow-cpu is a wheel",
    ],
)
def test_prose_about_the_same_things_is_not_noise(text):
    assert noise(text) == []
