"""The ``dpe-tutorial`` command line (also ``python -m dpe_tutorial``).

    dpe-tutorial [--debug] [--verbose] run (--preset NAME | --config FILE) [--set key=value ...]
                                       --out DIR [--quiet]
    dpe-tutorial presets
    dpe-tutorial fields
    dpe-tutorial [--debug] plot RUN_DIR... --out FILE [--metric NAME]
    dpe-tutorial [--debug] query --pool PATH --labels LABELS.csv --k N --out DIR
                             [--preset NAME | --config FILE] [--set key=value ...]
                             [--image-size PIXELS] [--classes A,B,...] [--eval CSV]
                             [--predictions] [--skip-unreadable] [--quiet]
    dpe-tutorial [--debug] merge-labels SUGGESTIONS.csv LABELS.csv [--pool PATH]

Every error ends with exit code 2 and one line that names the file or field
and says what to do: bad input (an unknown preset or field, a bad --set or
config file, a budget larger than the pool, missing or corrupt data, an
output folder that holds another run or other data, or that another run is
using), diverged training, and any OSError (a full disk, a path through a
file). ``--debug`` (or ``DPE_DEBUG=1``) adds the traceback. Ctrl-C ends with
exit code 130 and SIGTERM with 143, each saying what rerunning the same
command does: ``run`` resumes (an existing results folder of the same config
is resumed, never overwritten); ``query`` starts over.

Commands that do not train (``presets``, ``fields``, ``plot``,
``merge-labels``, ``--help``) and every input error (a config that fails its
checks; a query's missing folder, bad labels or held-out file) import no Keras
backend. TensorFlow's C++ logging below warnings is silenced
(``TF_CPP_MIN_LOG_LEVEL=2``, and its import-time notices, which that variable
misses, are dropped) unless ``--verbose`` or ``--debug`` is given or the
variable is already set; then each notice shows once. ``--quiet`` drops them
always.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

# A hint per errno for the OSErrors a long run can meet
_OS_HINTS = {
    getattr(errno, name, None): hint
    for name, hint in (
        ("ENOSPC", "free some disk space, then rerun the same command to resume"),
        ("EDQUOT", "free some space in your quota, then rerun the same command to resume"),
        ("EFBIG", "the file size limit (ulimit -f) was reached; raise it, then rerun"),
        ("EACCES", "check the permissions of the path"),
        ("EPERM", "check the permissions of the path"),
        ("EROFS", "choose a writable location"),
        ("ENOTDIR", "a part of the path is a file, not a folder"),
        ("EISDIR", "it is a folder; give a file"),
    )
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same cleanup runs (atomic writes, the lock)."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("DPE_DEBUG", "") not in ("", "0")
    # the backend's logging stays on for --verbose, --debug or the user's own setting
    args.quiet_backend = not (args.verbose or debug or "TF_CPP_MIN_LOG_LEVEL" in os.environ)
    if args.quiet_backend:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # read when TensorFlow is imported
    from .running import tracing

    tracing.keep_backend_notices(not (args.quiet_backend or getattr(args, "quiet", False)))
    with _Interrupts() as interrupts:
        try:
            return args.handler(args)
        except KeyboardInterrupt as interrupt:
            interrupts.caught()
            if debug:
                traceback.print_exc()
            terminated = isinstance(interrupt, Terminated)
            name = "terminated (SIGTERM)" if terminated else "interrupted"
            rerun = getattr(args, "rerun", "rerun the same command to resume")
            print(f"dpe-tutorial: {name}; {rerun}", file=sys.stderr)
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except Exception as error:
            if debug:
                traceback.print_exc()
            print(f"dpe-tutorial: error: {_one_line(error, debug)}", file=sys.stderr)
            return EXIT_ERROR


def _quiet_python_logging(args) -> None:
    """TensorFlow's Python logger at warnings and above, before TensorFlow loads.

    TF_CPP_MIN_LOG_LEVEL=2, set in :func:`main`, silences TensorFlow's C++
    INFO lines (CPU features, absl's preamble) that otherwise start every
    command that imports it. absl's Python logging already defaults to
    warnings; its logger is left alone (absl must create it as its own class).
    """
    if args.quiet_backend:
        logging.getLogger("tensorflow").setLevel(logging.WARNING)


class _Interrupts:
    """Ctrl-C and SIGTERM as KeyboardInterrupt and Terminated, which cannot get lost.

    A signal handler's exception surfaces in whatever Python code runs next,
    and that may be a garbage-collector callback (JAX installs one) whose
    exceptions Python prints and drops, so the run would go on. The handler
    therefore arms a timer that raises the exception again every
    REPEAT_SECONDS until ``main`` has caught it, and the dropped ones are not
    printed. Off the main thread (signals cannot be handled there) it does
    nothing.
    """

    REPEAT_SECONDS = 0.5

    def __init__(self):
        self.pending: type[KeyboardInterrupt] | None = None
        self.previous: dict = {}
        self.can_repeat = hasattr(signal, "setitimer")  # not on Windows

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum, kind in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup and `&` ignore some
                    self.previous[signum] = signal.signal(signum, self._handler(kind))
            if self.can_repeat:
                self.previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._repeat)
            self.hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        return self

    def __exit__(self, *exc) -> None:
        self.caught()
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if self.previous:
            sys.unraisablehook = self.hook

    def caught(self) -> None:
        """``main`` has the exception: stop raising it."""
        self.pending = None
        if self.can_repeat and self.previous:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _handler(self, kind: type[KeyboardInterrupt]):
        def handle(signum, frame):
            self.pending = kind
            self._raise()

        return handle

    def _repeat(self, signum, frame):
        if self.pending is not None:
            self._raise()

    def _raise(self):
        if self.can_repeat:  # once more soon, in case this one is dropped
            signal.setitimer(signal.ITIMER_REAL, self.REPEAT_SECONDS)
        raise self.pending()

    def _unraisable(self, unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and self.pending is not None:
            return  # dropped where it landed; the timer raises it again
        self.hook(unraisable)


def _one_line(error: Exception, debug: bool) -> str:
    """The error as one line: ours already name the file or field and say what to do."""
    if isinstance(error, OSError) and error.strerror:
        # raised by the operating system: [Errno 28] No space left on device: 'path'
        where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name)
        hint = _OS_HINTS.get(error.errno, "")
        message = f"{where or 'a file operation'}: {error.strerror}" + (f"; {hint}" if hint else "")
    elif isinstance(error, (ValueError, OSError, LookupError)):
        message = str(error) or type(error).__name__
    else:  # not one we expected: say what it is
        message = f"{type(error).__name__}: {error}"
        if not debug:
            message += " (rerun with --debug for the traceback)"
    # one line, all of it: a missing dataset's message lists every place tried
    return " ".join(line.strip() for line in message.splitlines())


def _run(args) -> int:
    from .running.config import ExperimentConfig, preset

    # checked before the backend is imported: a bad field answers at once
    config = preset(args.preset) if args.preset else ExperimentConfig.from_yaml(args.config)
    config = config.with_overrides(args.set or [])
    _quiet_python_logging(args)
    from .running import tracing

    tracing.import_keras()  # its import-time notices once, or not at all
    from .running.experiment import run_experiment

    start = time.perf_counter()
    table = run_experiment(config, args.out, quiet=args.quiet)
    columns = ["trial", "n_labeled", "ensemble_accuracy", "mean_member_accuracy", "nll", "ece"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"results in {args.out} ({time.perf_counter() - start:.1f} s this session)")
    return 0


def _presets(args) -> int:
    print(presets_table())
    print("\nother fields take their defaults (`dpe-tutorial fields`); change any with --set")
    return 0


def presets_table() -> str:
    """A field per row and a preset per column: the fields that differ, and beta and kl_form."""
    from .running.config import preset_differences

    rows = preset_differences()
    names = list(next(iter(rows.values())))
    table = [["field", *names]] + [[field, *values.values()] for field, values in rows.items()]
    return _columns(table)


def _fields(args) -> int:
    print(fields_table())
    return 0


def fields_table() -> str:
    """Every config field: its default, the values it takes, and what it means."""
    import dataclasses

    from .running.config import FIELD_DOCS, ExperimentConfig, show_value

    lines = []
    for field in dataclasses.fields(ExperimentConfig):
        allowed, meaning = FIELD_DOCS[field.name]
        lines.append(["  " + field.name, show_value(field.default), allowed])
        lines.append(["      " + meaning])
    widths = [max(len(row[i]) for row in lines if len(row) == 3) for i in range(2)]
    out = [f"{'field':<{widths[0]}}  {'default':<{widths[1]}}  allowed values"]
    for row in lines:
        if len(row) == 3:
            out.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}")
        else:
            out.append(row[0])
    return "\n".join(out)


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def _plot(args) -> int:
    from .figures import plots
    from .running import results

    _check_output_file(Path(args.out))  # before the slow part
    runs = [results.load_run(path) for path in args.run_dirs]
    figure = plots.learning_curves(runs, metric=args.metric)
    plots.save_figure(figure, args.out)
    print(f"wrote {args.out}")
    return 0


def _query(args) -> int:
    _quiet_python_logging(args)
    from .labelling import query

    config = query.resolve_config(args.preset or args.config, args.set or [])
    classes = args.classes.split(",") if args.classes else None
    table = query.suggest(
        args.pool,
        args.labels,
        args.k,
        args.out,
        config,
        image_size=args.image_size,
        classes=classes,
        quiet=args.quiet,
        skip_unreadable=args.skip_unreadable,
        eval_csv=args.eval,
        predictions=args.predictions,
        report=print,
    )
    print(table.head(10).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    out = Path(args.out)
    extra = f", {out / query.PREDICTIONS}" if args.predictions else ""
    print(
        f"wrote {out / query.SUGGESTIONS} ({len(table)} rows), {out / query.CONTACT_SHEET}{extra},"
    )
    print(f"      {out / query.MODEL} and {out / query.CONFIG}")
    print(
        f"next: fill in the label column of {out / query.SUGGESTIONS}, then "
        f"`dpe-tutorial merge-labels {out / query.SUGGESTIONS} {args.labels}`"
    )
    return 0


def _merge_labels(args) -> int:
    from .labelling.merge_labels import merge_labels

    merged = merge_labels(args.suggestions, args.labels, args.pool)
    print(
        f"merged {merged.added} label(s) from {args.suggestions} into {args.labels} "
        f"({merged.total} rows now); {merged.blank} row(s) left blank were skipped; "
        f"{merged.already} were there already"
    )
    return 0


def _check_output_file(path: Path) -> None:
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder; give an image file such as curves.png")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {path}: {parent} is a file, not a folder")
            return


RUN_EPILOG = """\
`dpe-tutorial fields` lists every field --set accepts, with its default and
allowed values; `dpe-tutorial presets` shows the presets side by side.
Values are read as YAML. Examples:

  dpe-tutorial run --preset smoke --out runs/smoke
  dpe-tutorial run --preset smoke --set epochs=5 --set beta=0 --out runs/plain
  dpe-tutorial run --preset cifar10-smoke --set kl_form=inclusive --set "beta=elbo*0.01" \\
      --set acquisition=mutual_information --out runs/mi
  dpe-tutorial run --config my.yaml --set "schedule=[100, 200, 400]" --out runs/mine
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpe-tutorial", description="Deep probabilistic ensembles for active learning."
    )
    debug_help = "show the traceback of an error (also DPE_DEBUG=1)"
    verbose_help = "keep the backend's (TensorFlow's) informational logging (also --debug)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # also accepted after the command; SUPPRESS keeps the global value when it is not
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help)
    after.add_argument(
        "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run",
        parents=[after],
        help="run or resume an experiment into a results folder",
        description="Run (or resume) an experiment: a preset or config file, changed by --set.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a named preset (see `dpe-tutorial presets`)")
    source.add_argument("--config", help="a YAML file of config fields")
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="change a config field (repeatable); `dpe-tutorial fields` lists them",
    )
    run.add_argument("--out", required=True, help="results folder (resumed if it exists)")
    run.add_argument(
        "--quiet", action="store_true", help="no progress bars or round lines (for CI logs)"
    )
    run.set_defaults(handler=_run)

    listing = commands.add_parser("presets", help="the presets, side by side")
    listing.set_defaults(handler=_presets)

    fields = commands.add_parser(
        "fields", help="every config field: its default, allowed values and meaning"
    )
    fields.set_defaults(handler=_fields)

    plot = commands.add_parser(
        "plot", parents=[after], help="learning curves of one or more results folders"
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", required=True, help="image file (.png, .svg or .pdf)")
    plot.add_argument("--metric", default="ensemble_accuracy")
    plot.set_defaults(handler=_plot)

    query = commands.add_parser(
        "query",
        parents=[after],
        help="which images to label next: train on your labels, rank the rest",
        description=(
            "Train a deep probabilistic ensemble on the labelled images of a pool and rank "
            "its unlabelled images by the config's acquisition score. Writes "
            "suggestions.csv (rank,path,score,predicted,probability,label: fill in the label "
            "column, then run merge-labels), suggestions.png (a contact sheet), model.keras "
            "and config.json into --out."
        ),
    )
    query.add_argument(
        "--pool",
        required=True,
        help="a folder (searched recursively) or a zip of .png/.jpg/.jpeg/.bmp/.gif/.tif/.webp "
        "images of any size; each is converted to RGB and resized to --image-size (decoded "
        "once, cached)",
    )
    query.add_argument(
        "--labels",
        required=True,
        help="a CSV with columns path,label (paths relative to the pool root); the other "
        "images are the unlabelled pool; the classes are the distinct labels",
    )
    query.add_argument("--k", type=int, required=True, help="how many images to suggest")
    query.add_argument(
        "--out", required=True, help="output folder: new, empty, or an earlier query's"
    )
    query_source = query.add_mutually_exclusive_group()
    query_source.add_argument("--preset", help="a named preset (default: few-labels)")
    query_source.add_argument("--config", help="a YAML file of config fields")
    query.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field (repeatable)"
    )
    query.add_argument(
        "--image-size",
        type=int,
        default=32,
        metavar="PIXELS",
        help="images are resized (stretched, not cropped) to PIXELS x PIXELS (default 32, "
        "CIFAR-10's size)",
    )
    query.add_argument(
        "--classes",
        help="comma-separated class names, in order (default: the distinct labels, sorted); "
        "each needs at least 1 labelled image",
    )
    query.add_argument(
        "--eval",
        metavar="CSV",
        help="held-out images to measure the trained ensemble on: a path,label CSV, paths "
        "relative to its folder, outside the pool; prints accuracy, NLL and ECE",
    )
    query.add_argument(
        "--predictions",
        action="store_true",
        help="also write predictions.csv: path,label,predicted,probability,score of every "
        "pool image (pre-labels for a labelling tool)",
    )
    query.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave images that cannot be read out of the pool, listing each, instead of "
        "stopping (the error names them all)",
    )
    query.add_argument("--quiet", action="store_true", help="no progress bars")
    query.set_defaults(
        handler=_query,
        rerun="a query does not resume: rerunning the same command starts it over",
    )

    merge = commands.add_parser(
        "merge-labels",
        parents=[after],
        help="add the labels filled into a query's suggestions.csv to the labels file",
        description=(
            "Append the rows of SUGGESTIONS whose label column is filled in to LABELS "
            "(path,label). Blank rows are skipped and counted; a path outside the pool or "
            "labelled differently in the two files stops the merge, and LABELS is left as it "
            "was. LABELS is rewritten atomically, its earlier lines unchanged."
        ),
    )
    merge.add_argument("suggestions", metavar="SUGGESTIONS", help="a filled-in suggestions.csv")
    merge.add_argument("labels", metavar="LABELS", help="the labels CSV the query read")
    merge.add_argument(
        "--pool",
        help="the pool the paths are relative to (default: the one recorded in the "
        "config.json beside SUGGESTIONS)",
    )
    merge.set_defaults(handler=_merge_labels, rerun="nothing was changed")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
