"""Which precision a run computes in: ``mixed_precision`` true, false or ``auto``.

Mixed bfloat16 (bfloat16 arithmetic, float32 weights and loss) is faster on
GPUs and on CPUs with bfloat16 units (AVX-512 BF16 or AMX), and slower on
CPUs without them, where bfloat16 is emulated. ``auto`` takes bfloat16
where it is faster: on a GPU, or on a CPU whose flags name a bfloat16 unit.
Measured on an AMD EPYC with AVX-512 BF16 (2 cores, README "Benchmarks"):
Gal et al.'s CNN, 8 members, 1.8 x float32's images per second; ResNet-18 of
width 8, 1.17 x (both on the benchmark's 32x32 colour images).
"""

from __future__ import annotations

from functools import cache

from .provenance import BFLOAT16_FLAGS, cpu_units

AUTO = "auto"


def cpu_bfloat16_units(cpuinfo: str | None = None) -> list[str]:
    """The bfloat16 units this CPU's flags name (empty where none, or not Linux)."""
    return cpu_units(BFLOAT16_FLAGS, cpuinfo)


def use_bfloat16(setting) -> bool:
    """Whether a config's ``mixed_precision`` computes in bfloat16 on this machine."""
    if setting == AUTO:
        return _machine_has_bfloat16()
    return bool(setting)


@cache
def _machine_has_bfloat16() -> bool:
    """Asked once a process: reading the CPU flags and asking nvidia-smi every round is waste."""
    from .provenance import _gpu_name

    return bool(cpu_bfloat16_units()) or _gpu_name() is not None


def describe(setting) -> str:
    """``mixed bfloat16`` or ``float32``, and, for ``auto``, what it found."""
    chosen = "mixed bfloat16" if use_bfloat16(setting) else "float32"
    if setting != AUTO:
        return chosen
    units = cpu_bfloat16_units()
    if units:
        return f"{chosen} (auto: the CPU has {', '.join(units)})"
    if chosen == "float32":
        return f"{chosen} (auto: no GPU, no bfloat16 unit on the CPU)"
    return f"{chosen} (auto: a GPU)"
