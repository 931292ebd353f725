"""Build the book: execute every chapter and write static HTML that renders offline.

    python scripts/build_book.py [--out .] [--preset smoke] [--data PATH]

Sphinx runs with warnings as errors (and nitpicky), so a broken reference,
an unknown citation or a chapter that raises fails the build. The experiment
chapter runs the preset given here (environment variable ``DPE_BOOK_PRESET``)
and writes its results under ``<out>/_build/runs``, where the results chapter finds
them. Prints the path of ``index.html`` and the build time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_environment(out: Path, preset: str, data: str | None) -> dict[str, str]:
    environment = dict(os.environ)
    environment["DPE_BOOK_PRESET"] = preset
    environment["DPE_BOOK_RUNS"] = str(out / "_build" / "runs")
    if data:
        environment["DPE_DATA"] = str(Path(data).resolve())
    environment.setdefault("KERAS_BACKEND", "tensorflow")
    # figures go to the notebook outputs, never to a window
    environment["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # TensorFlow's C++ start-up chatter; errors still show
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the kernel's debugger warns about frozen modules on every start
    environment.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default=str(ROOT),
        help="the HTML goes to OUT/_build/html, the runs to OUT/_build/runs",
    )
    parser.add_argument(
        "--preset",
        default=os.environ.get("DPE_BOOK_PRESET", "smoke"),
        help="preset the experiment chapter runs (smoke, cifar10-smoke, linear-4)",
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("DPE_BOOK_DATA"),
        help="CIFAR-10 for the cifar10 presets (default: $DPE_BOOK_DATA, else $DPE_DATA)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    command = [
        sys.executable,
        "-c",  # the jupyter-book command of this Python, wherever its scripts are
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(ROOT),
        "--path-output",
        str(out),
        "--all",  # execute every chapter: the figures always come from this code
        "--warningiserror",
        "--nitpick",
        "--keep-going",  # report every warning, then fail
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, env=build_environment(out, args.preset, args.data), check=False
    )
    minutes = (time.perf_counter() - started) / 60
    index = out / "_build" / "html" / "index.html"
    if result.returncode != 0:
        print(f"the book build failed after {minutes:.1f} min (see the messages above)")
        return result.returncode
    print(f"built in {minutes:.1f} min with the {args.preset!r} preset: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
