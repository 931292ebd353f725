"""The ``dpe-tutorial`` command line (also ``python -m dpe_tutorial``).

    dpe-tutorial run (--preset NAME | --config FILE) [--set key=value ...] --out DIR [--quiet]
    dpe-tutorial presets
    dpe-tutorial plot RUN_DIR... --out FILE [--metric NAME]

Bad input (an unknown preset or field, a bad --set, a budget larger than the
pool, missing or corrupt data, an output folder that holds another run)
ends with exit code 2 and a one-line reason. An existing results folder of
the same config is resumed, never overwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        # one line, all of it: a missing dataset's message lists every place tried
        message = " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
        print(f"dpe-tutorial: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dpe-tutorial: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _run(args) -> int:
    from .experiment import ExperimentConfig, preset, run_experiment

    config = preset(args.preset) if args.preset else ExperimentConfig.from_yaml(args.config)
    config = config.with_overrides(args.set or [])
    start = time.perf_counter()
    table = run_experiment(config, args.out, quiet=args.quiet)
    columns = ["trial", "n_labeled", "ensemble_accuracy", "mean_member_accuracy", "nll", "ece"]
    print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"results in {args.out} ({time.perf_counter() - start:.1f} s this session)")
    return 0


def _presets(args) -> int:
    from .experiment import PRESETS

    for name, values in PRESETS.items():
        print(f"{name}: {json.dumps(values)}")
    return 0


def _plot(args) -> int:
    from . import plots

    runs = [plots.load_run(path) for path in args.run_dirs]
    figure = plots.learning_curves(runs, metric=args.metric)
    plots.save_figure(figure, args.out)
    print(f"wrote {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpe-tutorial", description="Deep probabilistic ensembles for active learning."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run or resume an experiment into a results folder")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a named preset (see `dpe-tutorial presets`)")
    source.add_argument("--config", help="a YAML file of config fields")
    run.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a field (repeatable)"
    )
    run.add_argument("--out", required=True, help="results folder (resumed if it exists)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(handler=_run)

    listing = commands.add_parser("presets", help="list the presets and their fields")
    listing.set_defaults(handler=_presets)

    plot = commands.add_parser("plot", help="learning curves of one or more results folders")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", required=True, help="image file (.png, .svg or .pdf)")
    plot.add_argument("--metric", default="ensemble_accuracy")
    plot.set_defaults(handler=_plot)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
