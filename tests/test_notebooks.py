"""The book's notebooks: committed clean, no logic of their own; papermill runs the experiment."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
EXPERIMENT = BOOK / "06_linear4_experiment.ipynb"
RESULTS = BOOK / "07_results.ipynb"
# the parameters the issue and the chapter promise papermill users
EXPERIMENT_PARAMETERS = {
    "preset",
    "data_path",
    "budget",
    "rounds",
    "members",
    "width",
    "epochs",
    "train_subset",
    "test_subset",
    "acquisition",
    "beta",
    "kl_form",
    "trials",
    "baselines",
    "out_dir",
    "quiet",
}


def code_cells(path: Path):
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def parameters_cell(path: Path):
    tagged = [c for c in code_cells(path) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return tagged[0]


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_every_chapter_is_in_the_table_of_contents_and_exists():
    files = toc_files()
    assert len(files) == len(set(files))
    chapters = {p.relative_to(ROOT).with_suffix("").as_posix() for p in BOOK.glob("*.ipynb")}
    chapters |= {p.relative_to(ROOT).with_suffix("").as_posix() for p in BOOK.glob("*.md")}
    assert set(files) == chapters


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name} has outputs: clear them before committing"
            )
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_define_no_reusable_logic(path):
    for cell in code_cells(path):
        # IPython magics (``%matplotlib inline``) are not Python: left out of the parse
        python = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith("%")
        )
        tree = ast.parse(python)
        defined = [
            type(node).__name__
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        ]
        assert not defined, f"{path.name} defines {defined}: move it into dpe_tutorial"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_one_title(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    titles = [
        line
        for cell in cells
        if cell.cell_type == "markdown"
        for line in re.sub(r"```.*?```", "", cell.source, flags=re.S).splitlines()
        if line.startswith("# ")
    ]
    assert len(titles) == 1, f"{path.name} has {len(titles)} top-level titles"


def test_the_experiment_notebook_takes_the_documented_parameters():
    tree = ast.parse(parameters_cell(EXPERIMENT).source)
    names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert names == EXPERIMENT_PARAMETERS
    assert "results_dir" in parameters_cell(RESULTS).source


# -- papermill ---------------------------------------------------------------

TINY = {
    "budget": 40,
    "rounds": 2,
    "members": 2,
    "kl_form": "exclusive",  # two members: the default (papers') form needs four
    "width": 2,
    "epochs": 1,
    "quiet": True,
}


def execute(notebook: Path, output: Path, parameters: dict) -> nbformat.NotebookNode:
    import papermill

    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters,
        cwd=str(BOOK),
        kernel_name="python3",
        progress_bar=False,
    )
    return nbformat.read(output, as_version=4)


def images(notebook: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


@pytest.mark.slow
def test_papermill_runs_the_experiment_and_results_notebooks_on_a_tiny_budget(tmp_path):
    runs = tmp_path / "runs"
    executed = execute(
        EXPERIMENT,
        tmp_path / "experiment.ipynb",
        {**TINY, "preset": "smoke", "out_dir": str(runs)},
    )
    folders = sorted(p.parent for p in runs.rglob("results.csv"))
    from dpe_tutorial.running import experiment

    # the DPE of these parameters, random acquisition and the plain ensemble
    smoke = experiment.with_baselines(experiment.configure("smoke", kl_form=TINY["kl_form"]))
    assert [f.relative_to(runs).as_posix() for f in folders] == sorted(
        f"smoke/{experiment.run_slug(c)}" for c in smoke
    )
    assert len(folders) == 3
    for folder in folders:
        record = json.loads((folder / "config.json").read_text())
        assert record["config"]["budget"] == 40 and record["schedule_sizes"] == [20, 40]
    assert images(executed) >= 1

    again = execute(
        EXPERIMENT,
        tmp_path / "again.ipynb",
        {**TINY, "preset": "smoke", "out_dir": str(runs)},
    )
    assert images(again) >= 1  # a rerun reads the finished folders and changes none
    for folder in folders:
        assert len(json.loads((folder / "config.json").read_text())["sessions"]) == 1

    results = execute(
        RESULTS,
        tmp_path / "results.ipynb",
        {"results_dir": str(tmp_path / "no-committed-runs"), "book_runs": str(runs)},
    )
    # curves, acquired grids (one per method), class balance, score histograms, reliability
    assert images(results) >= 7


@pytest.mark.slow
def test_a_bad_parameter_stops_the_experiment_notebook_with_a_clear_message(tmp_path):
    import papermill

    with pytest.raises(papermill.PapermillExecutionError, match="config field 'kl_form'"):
        execute(
            EXPERIMENT,
            tmp_path / "bad.ipynb",
            {**TINY, "kl_form": "sideways", "out_dir": str(tmp_path / "runs")},
        )
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.slow
def test_make_reproduce_takes_a_data_path_relative_to_where_make_runs(tmp_path):
    """The README's tiny reproduce: papermill runs in book/, the path was typed in the root."""
    if not (ROOT.parent / "shared" / "data" / "cifar10-jpeg.zip").is_file():
        pytest.skip("the shared CIFAR-10 copy is absent")
    tiny = (
        "-p budget 40 -p rounds 2 -p members 4 -p width 2 -p epochs 1 -p baselines False "
        "-p train_subset 2000 -p test_subset 500"
    )
    done = subprocess.run(
        ["make", "reproduce", "DPE_DATA=../shared/data/cifar10-jpeg.zip",
         f"REPRODUCE_DIR={tmp_path}", f"REPRODUCE_ARGS={tiny}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Unable to parse" not in done.stderr  # papermill reads every parameter
    assert len(list(tmp_path.rglob("results.csv"))) == 1
