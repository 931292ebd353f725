"""Build the book: execute every chapter and write static HTML that renders offline.

    python scripts/build_book.py [--out .] [--preset smoke] [--data PATH] [--jobs N]

The chapters run first, several at once (``--jobs``, default: the number of
cores), each in its own kernel in ``book/``; the results chapter waits for the
experiment chapter whose runs it reads. The executed copies go to
``<out>/_build/source``, and Jupyter Book renders that copy without executing
it again, so every build still runs every chapter. Sphinx runs with warnings
as errors (and nitpicky), so a broken reference, an unknown citation or a
chapter that raises fails the build. The experiment chapter runs the preset
given here (environment variable ``DPE_BOOK_PRESET``) and writes its results
under ``<out>/_build/runs``. Prints each chapter's time, the path of
``index.html`` and the build time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
# a chapter that reads what another chapter writes runs after it
RUNS_AFTER = {"07_results": "06_linear4_experiment"}


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
    # on CPUs where TensorFlow turns oneDNN on by itself, it says so at every start, past
    # TF_CPP_MIN_LOG_LEVEL (seen with 2.21; tensorflow/tensorflow#100442); off, every x86
    # CPU runs the chapters the same way and the log stays clean
    environment.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    # the kernel's debugger warns about frozen modules on every start
    environment.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return environment


def execute_chapter(source: Path, target: Path, timeout: int) -> float:
    """Run one chapter in a fresh kernel in ``book/`` and write the executed copy; seconds."""
    from nbclient import NotebookClient

    started = time.perf_counter()
    notebook = nbformat.read(source, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        # the kernel's start-up warnings (transport, debugger) are not the reader's business
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        resources={"metadata": {"path": str(source.parent)}},
    )
    try:
        client.execute()
    except Exception as error:
        # nbclient's own errors do not survive the trip back from the worker process
        raise RuntimeError(str(error)) from None
    nbformat.write(notebook, target)
    return time.perf_counter() - started


def longest_first(chapters: list[str]) -> list[str]:
    """The experiment chapter first: it is the longest, and another chapter waits for it."""
    waited_for = set(RUNS_AFTER.values())
    return sorted(chapters, key=lambda name: (name not in waited_for, name))


def execute_chapters(staging: Path, timeout: int, jobs: int) -> list[str]:
    """Execute every chapter of ``book/`` into ``staging/book``; the chapters that failed."""
    chapters = longest_first([path.stem for path in sorted(BOOK.glob("*.ipynb"))])
    waiting = [name for name in chapters if RUNS_AFTER.get(name) in chapters]
    ready = [name for name in chapters if name not in waiting]
    failed: list[str] = []
    running: dict[Future, str] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:

        def submit(name: str) -> None:
            source, target = BOOK / f"{name}.ipynb", staging / "book" / f"{name}.ipynb"
            running[pool.submit(execute_chapter, source, target, timeout)] = name

        for name in ready:
            submit(name)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    seconds = future.result()
                except Exception as error:  # the cell's traceback says what went wrong
                    failed.append(name)
                    print(f"chapter {name} failed:\n{error}", flush=True)
                    continue
                print(f"executed {name} in {seconds:.0f} s", flush=True)
                for after in [n for n in waiting if RUNS_AFTER[n] == name]:
                    waiting.remove(after)
                    submit(after)
    failed.extend(waiting)  # never ran: the chapter they wait for failed
    return failed


def prepare_staging(staging: Path) -> int:
    """Copy the book's sources to ``staging`` with execution off; the cell timeout."""
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(BOOK, staging / "book")
    shutil.copytree(ROOT / "_static", staging / "_static")  # the book's own CSS
    shutil.copy2(ROOT / "_toc.yml", staging / "_toc.yml")
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    timeout = int(config["execute"]["timeout"])
    # the chapters were executed just before; Jupyter Book renders their outputs
    config["execute"]["execute_notebooks"] = "off"
    (staging / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
    return timeout


def render(staging: Path, out: Path, environment: dict[str, str]) -> int:
    command = [
        sys.executable,
        "-c",  # the jupyter-book command of this Python, wherever its scripts are
        "import sys; from jupyter_book.cli.main import main; sys.exit(main())",
        "build",
        str(staging),
        "--path-output",
        str(out),
        "--all",  # write every page again
        "--warningiserror",
        "--nitpick",
        "--keep-going",  # report every warning, then fail
    ]
    return subprocess.run(command, env=environment, check=False).returncode


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
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="chapters executed at once (default: the number of cores)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    out = Path(args.out).resolve()
    staging = out / "_build" / "source"
    started = time.perf_counter()
    timeout = prepare_staging(staging)
    environment = build_environment(out, args.preset, args.data)
    # the kernels inherit this process's environment
    os.environ.clear()
    os.environ.update(environment)
    failed = execute_chapters(staging, timeout, args.jobs)
    minutes = (time.perf_counter() - started) / 60
    if failed:
        print(f"the book build failed after {minutes:.1f} min: {', '.join(failed)} did not run")
        return 1
    print(f"executed every chapter in {minutes:.1f} min; rendering", flush=True)
    code = render(staging, out, environment)
    minutes = (time.perf_counter() - started) / 60
    index = out / "_build" / "html" / "index.html"
    if code != 0:
        print(f"the book build failed after {minutes:.1f} min (see the messages above)")
        return code
    print(f"built in {minutes:.1f} min with the {args.preset!r} preset: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
