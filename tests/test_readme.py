"""The README works as printed: its examples run, and what it names exists.

Every Python example runs; the quick start's smoke run runs from a folder laid
out as a fresh clone after `make setup`; every `make` target and variable,
every `dpe-tutorial` command line, preset and config field, and every path in
the repository that the README names exists; the module list matches the
package; and facts that drift (test counts) stay out.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
SHELL_BLOCKS = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.DOTALL)


def section(title: str, level: str = "##") -> str:
    """The README's section with this heading, up to the next heading of its level."""
    match = re.search(rf"^{level} {re.escape(title)}\n(.*?)(?=^{level} |\Z)", TEXT, re.M | re.S)
    assert match, f"the README has no section {level} {title}"
    return match.group(1)


def shell_lines(text: str) -> list[str]:
    """The command lines of the shell blocks in text: continuations joined, comments off."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def code_spans() -> list[str]:
    """Everything the README prints as code: the lines of its code blocks and inline code."""
    others = re.findall(r"```(?!bash)[a-z]*\n(.*?)```", TEXT, flags=re.DOTALL)
    prose = re.sub(r"```[a-z]*\n.*?```", "", TEXT, flags=re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", prose)
    lines = [line for block in others for line in block.splitlines()]
    return shell_lines(TEXT) + lines + inline


def test_readme_has_python_examples():
    assert EXAMPLES


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_example_runs(number):
    exec(compile(EXAMPLES[number], f"README.md example {number + 1}", "exec"), {})


# the quick start


def test_the_quick_start_comes_first_and_names_the_four_steps():
    first = re.search(r"^## (.*)$", TEXT, re.M).group(1)
    assert first == "Quick start"
    commands = shell_lines(section("Quick start"))
    assert commands[0] == "make setup"
    assert any(line.startswith(".venv/bin/dpe-tutorial run --preset smoke") for line in commands)
    assert {"make book", "make test"} <= set(commands)


def smoke_command() -> str:
    (line,) = [line for line in shell_lines(section("Quick start")) if "dpe-tutorial run" in line]
    return line


@pytest.mark.slow
def test_the_quick_start_smoke_run_runs_as_printed(tmp_path):
    """The command as printed, in a folder whose .venv is this environment (as after make setup)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "dpe-tutorial").exists():
        pytest.skip("this Python is not a virtual environment with the dpe-tutorial command")
    (tmp_path / ".venv").symlink_to(venv)
    command = smoke_command()
    out = tmp_path / shlex.split(command)[shlex.split(command).index("--out") + 1]

    def run() -> subprocess.CompletedProcess:
        done = subprocess.run(
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=900,
            env={**os.environ, "KERAS_BACKEND": "tensorflow"},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    run()
    results = (out / "results.csv").read_text()
    assert len(results.splitlines()) == 1 + 4  # a header and four rounds: 100 to 400 labels
    run()  # again: the run is finished, and stays as it was
    assert (out / "results.csv").read_text() == results


# what the README names exists


def test_every_make_target_and_variable_it_names_is_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))
    named = [m for span in code_spans() for m in re.findall(r"\bmake ([^`;|&]*)", span)]
    assert {"setup", "book", "test", "test-fast", "lint", "lock", "reproduce"} <= {
        word for words in named for word in words.split()
    }
    for words in named:
        for word in shlex.split(words):
            if "=" in word:
                variable = word.split("=", 1)[0]
                assert f"$({variable})" in makefile, f"make {words}: no variable {variable}"
            else:
                assert word in targets, f"make {words}: no target {word}"


def dpe_command_lines() -> list[list[str]]:
    """The arguments of every `dpe-tutorial` command line in the README's shell blocks."""
    lines = [line for block in SHELL_BLOCKS for line in shell_lines(f"```bash\n{block}```")]
    return [
        shlex.split(line.split("dpe-tutorial", 1)[1]) for line in lines if "dpe-tutorial " in line
    ]


def test_every_dpe_tutorial_command_line_parses_with_real_presets_and_fields():
    from dpe_tutorial.cli import _parser
    from dpe_tutorial.running.config import PRESETS, ExperimentConfig

    fields = {field.name for field in dataclasses.fields(ExperimentConfig)}
    lines = dpe_command_lines()
    assert {"run", "presets", "fields", "plot", "query", "merge-labels"} <= {a[0] for a in lines}
    for arguments in lines:
        args = _parser().parse_args(arguments)  # exits (SystemExit) on an unknown option
        if getattr(args, "preset", None):
            assert args.preset in PRESETS, arguments
        for setting in getattr(args, "set", None) or []:
            assert setting.split("=", 1)[0] in fields, arguments
    # presets and fields named in the prose too
    for name in re.findall(r"BOOK_PRESET=([a-z0-9-]+)", TEXT):
        assert name in PRESETS
    listed = re.search(r"^- The presets: (.*?)(?=^- )", TEXT, re.M | re.S).group(1)
    assert set(re.findall(r"`([a-z0-9-]+)`\s+\(", listed)) == set(PRESETS), "list every preset"
    for name in re.findall(r"--set\s+`?([a-z_]+)=", TEXT) + re.findall(r"`([a-z_]+)=", TEXT):
        assert name in fields or name == "key", f"{name} is not a config field"


def test_every_query_option_it_names_exists():
    from dpe_tutorial.cli import _parser

    commands = next(
        action for action in _parser()._actions if action.dest == "command"
    ).choices  # fmt: skip
    options = {
        option
        for name in ("query", "merge-labels")
        for action in commands[name]._actions
        for option in action.option_strings
    }
    named = set(re.findall(r"`(--[a-z-]+)", section("Which images should I label next?")))
    assert named and named <= options, named - options


def test_every_repository_path_it_names_exists():
    pattern = r"(?<![\w./])((?:book|scripts|benchmarks|results|tests|dpe_tutorial|\.ci)/[\w./-]*)"
    named = {m.rstrip(".,") for span in code_spans() for m in re.findall(pattern, span)}
    named |= {m.rstrip(".,") for m in re.findall(pattern, TEXT)}
    assert len(named) > 10
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"the README names paths that do not exist: {missing}"


def package_modules() -> set[str]:
    package = ROOT / "dpe_tutorial"
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[-1] != "__main__":
            names.add(".".join(parts))
    return names


def module_list() -> list[str]:
    """The modules "The package" lists: each bullet names its floor, then the floor's modules."""
    bullets = re.findall(r"^- (.*?)(?=^- |^$)", section("The package"), re.M | re.S)
    assert bullets, "The package lists no floors"
    named = []
    for bullet in bullets:
        floor, *modules = re.findall(r"`([^`]+)`", bullet)
        named += [floor, *(f"{floor}.{module}" for module in modules)]
    return named


def test_the_module_list_names_every_module_and_only_modules():
    """In "The package", every inline code word of a bullet is a module of its floor."""
    named = module_list()
    assert len(named) == len(set(named)), "a module is listed twice"
    modules = package_modules()
    assert not set(named) - modules, f"not modules of dpe_tutorial: {set(named) - modules}"
    assert not modules - set(named), f"modules the README leaves out: {modules - set(named)}"


def test_the_public_api_it_names_is_dpe_tutorial_all():
    import dpe_tutorial

    paragraph = section("The package").split("The public API", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"`([A-Za-z_]+)`", paragraph)) - {"dpe_tutorial"}
    assert named == set(dpe_tutorial.__all__) - {"__version__"}


def test_facts_that_drift_stay_out():
    """Test counts change with every test; internal issue numbers mean nothing to a reader."""
    assert not re.search(r"\b\d[\d,]* tests\b", TEXT)
    assert not re.search(r"issue \[\d", TEXT)
    assert "seed post" not in TEXT
