"""The package's floors hold: each imports only from its own subpackage and the floors below.

``method`` <- ``running`` <- ``figures`` <- ``studies`` <- ``book``, ``labelling`` <- ``cli``.
Imports inside functions count too: they are there to start no Keras backend
before it is needed, not to reach upwards. The modules that must stay free of
Keras are imported in a fresh interpreter, and the public API
(``dpe_tutorial.__all__``) resolves, lazily.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import dpe_tutorial

PACKAGE = Path(__file__).resolve().parents[1] / "dpe_tutorial"
# each subpackage's floor; a module may import from its own subpackage and from lower floors
FLOORS = {"method": 0, "running": 1, "figures": 2, "studies": 3, "book": 4, "labelling": 4}
TOP = {"cli": 5, "__main__": 6, "": 7}  # the command line, ``python -m``, the package itself
KERAS_FREE = (
    "method.acquisition",
    "method.choices",
    "running.config",
    "running.files",
    "running.provenance",
    "running.results",
    "running.results_folder",
    "running.study_cli",
    "studies.intervals",
    "studies.posterior_comparison",
    "cli",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The package modules ``name`` imports, anywhere in it (functions and TYPE_CHECKING too)."""
    path = MODULES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            base = ".".join([*base, *([node.module] if node.module else [])])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dpe_tutorial"):
            base = node.module.removeprefix("dpe_tutorial").lstrip(".")
        elif isinstance(node, ast.Import):
            found |= {
                alias.name.removeprefix("dpe_tutorial.")
                for alias in node.names
                if alias.name.startswith("dpe_tutorial.")
            }
            continue
        else:
            continue
        for alias in node.names:
            child = f"{base}.{alias.name}" if base else alias.name
            if child == "__version__":
                continue  # the package's version, which every floor may record
            found.add(child if child in MODULES else base)
    return {module for module in found if module in MODULES} - {name}


def floor(name: str) -> tuple[str, int]:
    head = name.split(".")[0]
    if head in FLOORS:
        return head, FLOORS[head]
    assert name in TOP, f"dpe_tutorial.{name} belongs to no floor: move it into a subpackage"
    return name, TOP[name]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_its_own_floor_and_those_below(name):
    own, rank = floor(name)
    for target in imports(name):
        other, other_rank = floor(target)
        assert other == own or other_rank < rank, (
            f"dpe_tutorial.{name} ({own}) imports dpe_tutorial.{target} ({other}), which is not "
            "below it: move the function down, or pass the value in"
        )


def test_no_module_imports_itself_back():
    graph = {name: imports(name) for name in MODULES}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()]:
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return seen

    cycles = sorted(name for name in MODULES if name and name in reach(name))
    assert not cycles, f"import cycles through {cycles}"


def test_the_public_api_is_small_explicit_and_lazy():
    assert dpe_tutorial.__all__[0] == "__version__"
    assert len(dpe_tutorial.__all__) <= 20
    code = (
        "import sys, dpe_tutorial\n"
        "assert not [m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules]\n"
        "dpe_tutorial.acquisition, dpe_tutorial.query\n"
        "assert 'keras' not in sys.modules, 'the scores and the query start no backend'\n"
        "for name in dpe_tutorial.__all__:\n"
        "    assert getattr(dpe_tutorial, name) is not None, name\n"
        "    assert name in dir(dpe_tutorial), name\n"
        "from dpe_tutorial import DeepProbabilisticEnsemble, kl, run_experiment\n"
        "from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble as same\n"
        "assert DeepProbabilisticEnsemble is same\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dpe_tutorial.nothing  # noqa: B018


def test_the_modules_that_check_input_start_no_backend():
    code = "import sys\n" + "".join(f"import dpe_tutorial.{name}\n" for name in KERAS_FREE)
    code += "print([m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules])\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
