"""mixed_precision: true, false or auto (bfloat16 where the machine computes it faster)."""

from __future__ import annotations

import pytest

from dpe_tutorial.running import precision
from dpe_tutorial.running.config import ExperimentConfig, preset

EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
XEON_AMX = "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n"
OLD = "flags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture(autouse=True)
def ask_the_machine_afresh():
    # the machine is asked once a process; each test here fakes another one
    precision._machine_has_bfloat16.cache_clear()
    yield
    precision._machine_has_bfloat16.cache_clear()


def test_the_bfloat16_units_are_read_from_the_cpu_flags():
    assert precision.cpu_bfloat16_units(EPYC) == ["avx512_bf16"]
    assert precision.cpu_bfloat16_units(XEON_AMX) == ["avx512_bf16", "amx_bf16"]
    assert precision.cpu_bfloat16_units(OLD) == []


def test_provenance_records_the_cpus_vector_units():
    from dpe_tutorial.running import provenance

    assert provenance.cpu_units(provenance.VECTOR_FLAGS, EPYC) == [
        "avx2", "avx512f", "avx512_vnni", "avx512_bf16",
    ]  # fmt: skip
    assert provenance.cpu_units(provenance.VECTOR_FLAGS, OLD) == ["avx2"]
    here = provenance.cpu_units(provenance.VECTOR_FLAGS)
    assert provenance.machine()["cpu_units"] == here
    assert set(precision.BFLOAT16_FLAGS) <= set(provenance.VECTOR_FLAGS)


@pytest.mark.parametrize(("units", "gpu", "expected"), [
    (["avx512_bf16"], None, True),
    ([], None, False),
    ([], "NVIDIA H100", True),
])  # fmt: skip
def test_auto_takes_bfloat16_where_the_machine_has_it(monkeypatch, units, gpu, expected):
    from dpe_tutorial.running import provenance

    monkeypatch.setattr(precision, "cpu_bfloat16_units", lambda cpuinfo=None: units)
    monkeypatch.setattr(provenance, "_gpu_name", lambda: gpu)
    assert precision.use_bfloat16("auto") is expected
    assert precision.describe("auto").startswith("mixed bfloat16" if expected else "float32")
    # an explicit setting is kept whatever the machine
    assert precision.use_bfloat16(True) and not precision.use_bfloat16(False)
    assert precision.describe(False) == "float32"


def test_a_config_takes_true_false_or_auto_and_names_the_field_otherwise():
    ExperimentConfig(mixed_precision="auto")
    ExperimentConfig(mixed_precision=True)
    with pytest.raises(ValueError, match="mixed_precision"):
        ExperimentConfig(mixed_precision="fast")


def test_the_presets_measured_faster_in_bfloat16_choose_it_by_machine():
    # the query's default and the CIFAR-10 smoke preset: auto; the studies keep their protocol
    assert preset("few-labels").mixed_precision == "auto"
    assert preset("cifar10-smoke").mixed_precision == "auto"
    assert preset("cifar10-cpu").mixed_precision is False
    assert preset("mnist").mixed_precision is True
