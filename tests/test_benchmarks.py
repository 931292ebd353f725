"""The benchmarks run (on tiny inputs) and print their tables; speed is not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dpe_tutorial.method import acquisition

ROOT = Path(__file__).resolve().parents[1]


def test_acquisition_benchmark_prints_every_score(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_acquisition.py"),
            "--sizes",
            "300",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.startswith("machine: ")
    for name in acquisition.names():
        assert name in result.stdout
    report = json.loads(out.read_text())
    assert {row["score"] for row in report["results"]} >= set(acquisition.names())
    assert all(row["samples_per_s"] > 0 for row in report["results"])


@pytest.mark.slow
def test_ensemble_benchmark_compares_the_layouts(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_ensemble.py"),
            *("--members", "2", "--widths", "2", "--batches", "4"),
            *("--steps", "1", "--warmup", "1", "--member", "small_cnn", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert "grouped/branches" in result.stdout
    report = json.loads(out.read_text())
    assert {row["layout"] for row in report["rows"]} == {"branches", "grouped"}
    for row in report["rows"]:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and row["tflops"] > 0
    assert report["matmul_reference"]["tflops"] > 0
