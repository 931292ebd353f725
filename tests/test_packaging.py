"""The project's set-up files agree with each other and with what the package imports."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]
# alternatives to another extra: an environment installs one of each pair
ALTERNATIVES = {"tensorflow-cpu": "tensorflow"}
# import name -> distribution name, where they differ
DISTRIBUTION_OF = {"yaml": "pyyaml", "sklearn": "scikit-learn", "PIL": "pillow"}


def environment_pip_extras() -> set[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip section"
    editable = [line for line in pip_lists[0] if line.startswith("-e")]
    assert len(editable) == 1, "environment.yml must install the package itself with pip -e"
    match = re.search(r"\.\[([^\]]*)\]", editable[0])
    assert match, f"no extras in {editable[0]!r}"
    return {extra.strip() for extra in match.group(1).split(",")}


def makefile_extras() -> set[str]:
    match = re.search(r"^EXTRAS \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "Makefile has no EXTRAS default"
    return set(match.group(1).strip().split(","))


def test_environment_python_satisfies_requires_python():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pythons = [
        d for d in environment["dependencies"] if isinstance(d, str) and d.startswith("python")
    ]
    assert len(pythons) == 1
    version = Version(pythons[0].split("=")[-1])
    assert version in SpecifierSet(PROJECT["requires-python"])


@pytest.mark.parametrize("source", [environment_pip_extras, makefile_extras])
def test_environments_install_every_extra_once(source):
    extras = source()
    assert extras <= set(EXTRAS), f"unknown extras {extras - set(EXTRAS)}"
    wanted = {ALTERNATIVES.get(extra, extra) for extra in EXTRAS}
    installed = {ALTERNATIVES.get(extra, extra) for extra in extras}
    assert installed == wanted, f"missing extras: {wanted - installed}"
    assert len(installed) == len(extras), "an extra and its alternative are both installed"


def declared_distributions() -> set[str]:
    return {Requirement(spec).name.lower() for spec in PROJECT["dependencies"]}


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "dpe_tutorial").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"dpe_tutorial", "__future__"}


def test_runtime_dependencies_are_what_the_package_imports():
    imported = {DISTRIBUTION_OF.get(m, m).lower() for m in imported_top_level_modules()}
    assert imported == declared_distributions()


def test_no_backend_is_imported_by_the_package():
    # the same code must run on TensorFlow, JAX and PyTorch: only keras.ops
    assert not imported_top_level_modules() & {"tensorflow", "jax", "torch"}


def test_other_backends_do_not_need_tensorflow():
    # the GPU reproduction runs on JAX, where TensorFlow may not be installed at all
    pytest.importorskip("jax")
    script = (
        "import sys, numpy as np\n"
        "from dpe_tutorial.ensemble import DeepProbabilisticEnsemble\n"
        "from dpe_tutorial import acquisition\n"
        "m = DeepProbabilisticEnsemble((8, 8, 1), 3, n_members=2, member='small_cnn',\n"
        "    member_kwargs={'width': 2}, beta=0.1, kl_form='exclusive')\n"
        "m.compile('sgd')\n"
        "m.fit(np.zeros((4, 8, 8, 1), 'float32'), np.zeros(4, 'int32'), verbose=0)\n"
        "acquisition.predictive_entropy(m.predict_members(np.zeros((3, 8, 8, 1), 'float32')))\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'tensorflow'))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
