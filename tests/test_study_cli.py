"""The study scripts' shared command line: --out, --report, --data and one-line errors."""

from __future__ import annotations

import pytest

from dpe_tutorial.running import study_cli


def parse(argv, monkeypatch, variable_value=None):
    if variable_value is None:
        monkeypatch.delenv("DPE_TEST_DATA", raising=False)
    else:
        monkeypatch.setenv("DPE_TEST_DATA", variable_value)
    parser = study_cli.study_parser("Run the test study.\n\nMore words.")
    study_cli.add_data(parser, "DPE_TEST_DATA", "default.zip")
    study_cli.add_trials(parser, [0, 1], "trial indices")
    study_cli.add_verbose(parser)
    return parser.parse_args(argv)


def test_the_data_comes_from_the_flag_then_the_variable_then_the_default(monkeypatch):
    assert parse(["--out", "o"], monkeypatch).data == "default.zip"
    assert parse(["--out", "o"], monkeypatch, "env.zip").data == "env.zip"
    assert parse(["--out", "o", "--data", "a.zip"], monkeypatch, "env.zip").data == "a.zip"
    args = parse(["--out", "o", "--trials", "3", "4"], monkeypatch)
    assert (args.trials, args.report, args.verbose) == ([3, 4], False, False)


def test_out_is_required(monkeypatch, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse([], monkeypatch)
    assert stopped.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_report_prints_the_tables_once_and_runs_nothing(monkeypatch, capsys):
    ran = []
    args = parse(["--out", "folder", "--report"], monkeypatch)
    status = study_cli.run_or_report("test_study", args, lambda out: f"| {out} |", ran.append)
    assert (status, ran) == (0, [])
    assert capsys.readouterr().out == "| folder |\n"
    # a report that ends its own line gets no second newline
    study_cli.run_or_report("test_study", args, lambda out: "table\n", ran.append)
    assert capsys.readouterr().out == "table\n"


def test_a_value_error_is_one_line_naming_the_script_and_exit_2(monkeypatch, capsys):
    def refuse():
        raise ValueError("unknown arm 'x'")

    args = parse(["--out", "folder"], monkeypatch)
    assert study_cli.run_or_report("test_study", args, str, refuse) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == ["test_study: error: unknown arm 'x'"]
    assert captured.out == ""


def test_other_errors_are_not_swallowed(monkeypatch):
    def crash():
        raise RuntimeError("a bug shows its traceback")

    with pytest.raises(RuntimeError):
        study_cli.run_or_report("test_study", parse(["--out", "f"], monkeypatch), str, crash)
