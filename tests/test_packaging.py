"""The project's set-up files agree with each other and with what the package imports."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
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


# modules that are JAX programs, not Keras code: the reference posterior samples with NumPyro
# on JAX whatever the backend, from the `jax` extra
JAX_PROGRAMS = {"dpe_tutorial/studies/reference_posterior.py": ({"jax", "numpyro"}, "jax")}


def imported_top_level_modules(path_filter=lambda path: True) -> set[str]:
    modules = set()
    for path in (ROOT / "dpe_tutorial").rglob("*.py"):
        if not path_filter(path.relative_to(ROOT).as_posix()):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"dpe_tutorial", "__future__"}


def keras_code_modules() -> set[str]:
    return imported_top_level_modules(lambda path: path not in JAX_PROGRAMS)


def test_runtime_dependencies_are_what_the_package_imports():
    imported = {DISTRIBUTION_OF.get(m, m).lower() for m in keras_code_modules()}
    assert imported == declared_distributions()


def test_no_backend_is_imported_by_the_package():
    # the same code must run on TensorFlow, JAX and PyTorch: only keras.ops
    assert not keras_code_modules() & {"tensorflow", "jax", "torch"}


@pytest.mark.parametrize("path", sorted(JAX_PROGRAMS))
def test_jax_programs_import_only_their_extra_and_only_when_used(path):
    imports, extra = JAX_PROGRAMS[path]
    outside = imported_top_level_modules(lambda found: found == path) - keras_code_modules()
    assert outside == imports
    declared = {Requirement(spec).name.lower() for spec in EXTRAS[extra]}
    assert imports <= declared, f"{extra} extra must declare {imports - declared}"
    # imported inside functions only: importing the module needs neither
    module = path.removesuffix(".py").replace("/", ".")
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {module}; print(sorted(set({sorted(imports)}) & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_other_backends_do_not_need_tensorflow():
    # the GPU reproduction runs on JAX, where TensorFlow may not be installed at all
    pytest.importorskip("jax")
    script = (
        "import sys, numpy as np\n"
        "from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble\n"
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


# the lock: uv.lock pins every extra for every Python and platform pyproject.toml allows;
# environment-lock.txt is its export for environment.yml (both written by `make lock`)
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
ENVIRONMENT_LOCK = ROOT / "environment-lock.txt"
# where the markers of pyproject.toml and uv.lock are compared: each Python that
# requires-python allows, on the platforms the lock covers
SAMPLE_ENVIRONMENTS = [
    {
        "python_version": full.rsplit(".", 1)[0],
        "python_full_version": full,
        "platform_machine": machine,
        "sys_platform": system,
        "platform_system": {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}[system],
        "os_name": "nt" if system == "win32" else "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for full in ("3.10.14", "3.11.7", "3.12.8", "3.13.1")
    for system, machine in [
        ("linux", "x86_64"),
        ("linux", "aarch64"),
        ("darwin", "arm64"),
        ("win32", "AMD64"),
    ]
]


def applying(requirements: list[Requirement]) -> set[tuple]:
    """(environment, extra, name, specifier) for each requirement wherever its marker holds."""
    rows = set()
    for number, environment in enumerate(SAMPLE_ENVIRONMENTS):
        for extra in ["", *EXTRAS]:
            for requirement in requirements:
                marker = requirement.marker
                if marker is None or marker.evaluate({**environment, "extra": extra}):
                    name = canonicalize_name(requirement.name)
                    rows.add((number, extra, name, str(SpecifierSet(str(requirement.specifier)))))
    return rows


def pyproject_requirements() -> list[Requirement]:
    requirements = [Requirement(spec) for spec in PROJECT["dependencies"]]
    for extra, specs in EXTRAS.items():
        for spec in specs:
            requirement = Requirement(spec)
            condition = f"extra == '{extra}'"
            if requirement.marker is not None:
                condition = f"({requirement.marker}) and {condition}"
            requirement.marker = Marker(condition)
            requirements.append(requirement)
    return requirements


def locked_project() -> dict:
    projects = [p for p in LOCK["package"] if p["name"] == PROJECT["name"]]
    assert len(projects) == 1, "uv.lock does not lock the package itself: run `make lock`"
    return projects[0]


def locked_requirements(project: dict) -> list[Requirement]:
    return [
        Requirement(
            entry["name"]
            + entry.get("specifier", "")
            + (f"; {entry['marker']}" if entry.get("marker") else "")
        )
        for entry in project["metadata"]["requires-dist"]
    ]


def test_lock_is_in_step_with_pyproject():
    # what uv.lock was resolved for is what pyproject.toml asks now: same Python range,
    # extras and requirements (compared by where each marker holds, as uv rewrites them)
    project = locked_project()
    assert SpecifierSet(LOCK["requires-python"]) == SpecifierSet(PROJECT["requires-python"])
    assert project["version"] == PROJECT["version"]
    assert project["metadata"]["provides-extras"] == list(EXTRAS)
    locked, wanted = applying(locked_requirements(project)), applying(pyproject_requirements())
    assert locked == wanted, (
        "uv.lock is out of step with pyproject.toml (run `make lock`): "
        f"only in pyproject.toml {sorted(wanted - locked)[:5]}, "
        f"only in uv.lock {sorted(locked - wanted)[:5]}"
    )


def test_the_lock_check_notices_a_changed_requirement():
    # the check above can fail: a tightened bound is out of step with the same lock
    project = locked_project()
    entries = [dict(entry) for entry in project["metadata"]["requires-dist"]]
    keras = next(entry for entry in entries if entry["name"] == "keras")
    keras["specifier"] = ">=3.4,<4"
    changed = {**project, "metadata": {**project["metadata"], "requires-dist": entries}}
    assert applying(locked_requirements(changed)) != applying(pyproject_requirements())


def locked_versions() -> dict[str, set[str]]:
    versions: dict[str, set[str]] = {}
    for package in LOCK["package"]:
        versions.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    return versions


def environment_lock_pins() -> list[Requirement]:
    lines = ENVIRONMENT_LOCK.read_text().splitlines()
    return [Requirement(line) for line in lines if line and not line.lstrip().startswith("#")]


def test_environment_yml_installs_the_locked_versions():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    [pip_list] = [d["pip"] for d in environment["dependencies"] if isinstance(d, dict)]
    assert f"-r {ENVIRONMENT_LOCK.name}" in pip_list
    pins = environment_lock_pins()
    assert len(pins) > 50
    versions = locked_versions()
    for pin in pins:
        [specifier] = pin.specifier
        assert specifier.operator == "==", pin
        assert specifier.version in versions.get(canonicalize_name(pin.name), ()), (
            f"{pin} is not in uv.lock: run `make lock`"
        )
    # and the lock pins every requirement of the package and environment.yml's extras
    pinned = {canonicalize_name(pin.name) for pin in pins}
    extras = environment_pip_extras()
    for requirement in pyproject_requirements():
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({**environment, "extra": extra})
            for environment in SAMPLE_ENVIRONMENTS
            for extra in extras
        )
        assert not wanted or canonicalize_name(requirement.name) in pinned, requirement


def project_uv() -> Path:
    """The uv `make setup` installs beside this Python; skips (fails on CI) without it."""
    uv = Path(sys.executable).parent / "uv"
    if not uv.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have uv beside {sys.executable} (make setup installs it)")
        pytest.skip("no uv in this environment (make setup installs it)")
    return uv


def run_uv(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1"}
    return subprocess.run(
        [str(project_uv()), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_uv_finds_the_lock_up_to_date():
    done = run_uv("lock", "--check", "--python", sys.executable)
    assert done.returncode == 0, done.stderr[-2000:]


def test_environment_lock_is_the_export_of_uv_lock():
    extras = [f"--extra={extra}" for extra in sorted(environment_pip_extras())]
    done = run_uv("export", "--frozen", "--no-hashes", "--no-emit-project", *extras)
    assert done.returncode == 0, done.stderr[-2000:]

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]

    assert pins(done.stdout) == pins(ENVIRONMENT_LOCK.read_text()), "run `make lock`"


def test_provenance_records_the_lock_hash(tmp_path):
    from dpe_tutorial.running import provenance

    digest = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    assert provenance.lock_sha256() == digest
    assert provenance.lock_sha256(tmp_path / "uv.lock") is None  # an installed wheel has none
    (tmp_path / "uv.lock").write_text("x")
    assert provenance.lock_sha256(tmp_path / "uv.lock") == hashlib.sha256(b"x").hexdigest()
    assert provenance.environment()["lock_sha256"] == digest
    assert provenance.session_environment()["lock_sha256"] == digest
