"""Training throughput of DeepProbabilisticEnsemble: member layouts, ensemble sizes, widths.

For every (layout, members E, width, batch size) it trains on a fixed random
CIFAR-shaped batch and reports images per second (each image seen by all E
members), the achieved training FLOP rate, one step's peak device memory where
the backend reports it, and, per configuration, the grouped/branches speed
ratio. Each configuration runs in its own process, so peak memory and
compilation caches do not leak between them and an out-of-memory error costs
one row, not the run.

    python benchmarks/bench_ensemble.py                         # CPU-sized grid
    KERAS_BACKEND=jax python benchmarks/bench_ensemble.py --preset gpu --json out.json
    python benchmarks/bench_ensemble.py --members 2 --widths 4 --batches 8 --steps 2  # quick

The FLOP rate is compared with the measured dense matmul rate of the same
device (bfloat16 on GPUs, float32 on CPUs), which gives the model FLOP
utilisation (MFU).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from dpe_tutorial.running import provenance

PRESETS = {
    # small enough to finish in minutes on 2 CPU cores
    "cpu": {"members": [1, 2, 4, 8], "widths": [4, 8], "batches": [32, 128], "steps": 5},
    # the linear-4 scale: ResNet-18 of width 64 on 32x32 images
    "gpu": {"members": [1, 2, 4, 8], "widths": [32, 64], "batches": [128, 256, 512], "steps": 20},
}
LAYOUTS = ("branches", "grouped")


def training_flops_per_image(model) -> float:
    """Floating-point operations to train on one image: 3 x the forward multiply-adds x 2.

    Counts convolutions and dense layers (the rest is negligible); the
    backward pass costs about twice the forward one.
    """
    from keras import layers, ops

    from dpe_tutorial.method.models import MemberDense, leaf_layers

    forward = 0.0
    for layer in leaf_layers(model):
        if isinstance(layer, layers.Conv2D):
            kh, kw, in_per_group, out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            forward += 2.0 * kh * kw * in_per_group * out * height * width
        elif isinstance(layer, (layers.Dense, MemberDense)):
            forward += 2.0 * float(ops.size(layer.kernel))
    return 3.0 * forward


def measure_one(layout, members, width, batch, steps, warmup, mixed_precision, member) -> dict:
    """Train one configuration for warmup + steps steps; runs inside the child process."""
    import keras
    import numpy as np

    from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble

    keras.utils.set_random_seed(0)
    model = DeepProbabilisticEnsemble(
        (32, 32, 3),
        10,
        n_members=members,
        member=member,
        member_kwargs={"width": width},
        layout=layout,
        beta=1e-5 if members > 1 else 0.0,
        kl_form="exclusive",  # every form costs the same; this one allows 2 and 3 members
        mixed_precision=mixed_precision,
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, size=batch).astype("int32")
    start = time.perf_counter()
    for _ in range(warmup):
        model.train_on_batch(x, y)  # returns host numbers: the step has finished
    compile_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = time.perf_counter() - start
    images_per_s = batch * steps / seconds
    flops_per_image = training_flops_per_image(model)
    return {
        "layout": layout,
        "members": members,
        "width": width,
        "batch": batch,
        "images_per_s": images_per_s,
        "step_ms": 1000 * seconds / steps,
        "warmup_s": compile_seconds,
        "tflops": images_per_s * flops_per_image / 1e12,
        "peak_memory_gib": peak_memory_gib(),
    }


def peak_memory_gib() -> float | None:
    """Peak device memory of this process in GiB, where the backend reports it (GPUs)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            stats = jax.devices()[0].memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
        elif backend == "tensorflow":
            import tensorflow as tf

            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        elif backend == "torch":
            import torch

            peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
        else:
            peak = None
    except (ValueError, RuntimeError, IndexError):  # no GPU: the backend reports nothing
        peak = None
    return None if peak is None else peak / 2**30


def matmul_tflops(size: int = 4096, repeats: int = 10) -> dict:
    """Measured dense matmul rate: bfloat16 on GPUs, float32 on CPUs."""
    from keras import ops

    on_gpu = provenance.keras_device().startswith("gpu")
    dtype = "bfloat16" if on_gpu else "float32"
    if not on_gpu:
        size = min(size, 1024)
    a = ops.ones((size, size), dtype=dtype)
    b = ops.ones((size, size), dtype=dtype)
    ops.convert_to_numpy(ops.matmul(a, b)[0, 0])  # compile and warm up
    start = time.perf_counter()
    c = a
    for _ in range(repeats):
        c = ops.matmul(a, b)
    ops.convert_to_numpy(c[0, 0])  # wait for the device
    seconds = time.perf_counter() - start
    return {"dtype": dtype, "size": size, "tflops": 2 * size**3 * repeats / seconds / 1e12}


def run_child(config: dict, timeout: float) -> dict:
    """Measure one configuration in a fresh Python process."""
    command = [sys.executable, __file__, "--child", json.dumps(config)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**config, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**config, "error": last[:200]}
    return json.loads(lines[-1])


def print_table(rows: list[dict], info: dict, reference: dict) -> None:
    print(f"backend {info['backend']} (keras {info['keras']}) on {info['device']}")
    print(f"machine: {info['device_name']}; {info['cores']} cores; {info['platform']}")
    print(
        f"reference: measured {reference['dtype']} matmul {reference['tflops']:.2f} TFLOP/s "
        f"({reference['size']}x{reference['size']})"
    )
    header = (
        f"{'layout':<9}{'E':>3}{'width':>6}{'batch':>6}{'img/s':>10}{'step ms':>9}"
        f"{'TFLOP/s':>9}{'MFU':>7}{'peak GiB':>9}{'grouped/branches':>18}"
    )
    print(header)
    speed = {
        (r["layout"], r["members"], r["width"], r["batch"]): r["images_per_s"]
        for r in rows
        if "error" not in r
    }
    for r in rows:
        key = (r["members"], r["width"], r["batch"])
        if "error" in r:
            print(f"{r['layout']:<9}{key[0]:>3}{key[1]:>6}{key[2]:>6}  error: {r['error']}")
            continue
        ratio = ""
        if r["layout"] == "grouped" and ("branches", *key) in speed:
            ratio = f"{r['images_per_s'] / speed[('branches', *key)]:.2f}x"
        peak = "n/a" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        mfu = r["tflops"] / reference["tflops"]
        print(
            f"{r['layout']:<9}{key[0]:>3}{key[1]:>6}{key[2]:>6}{r['images_per_s']:>10.1f}"
            f"{r['step_ms']:>9.1f}{r['tflops']:>9.3f}{mfu:>7.1%}{peak:>9}{ratio:>18}"
        )
    ratios = [
        speed[("grouped", *k[1:])] / speed[k]
        for k in speed
        if k[0] == "branches" and ("grouped", *k[1:]) in speed and k[1] > 1
    ]
    if ratios:
        faster = "grouped" if sorted(ratios)[len(ratios) // 2] > 1 else "branches"
        print(
            f"grouped/branches over {len(ratios)} configurations with E > 1: "
            f"min {min(ratios):.2f}x, median {sorted(ratios)[len(ratios) // 2]:.2f}x, "
            f"max {max(ratios):.2f}x -> faster here: {faster}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--members", type=int, nargs="+")
    parser.add_argument("--widths", type=int, nargs="+")
    parser.add_argument("--batches", type=int, nargs="+")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--steps", type=int, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (compilation)")
    parser.add_argument("--member", default="resnet18")
    parser.add_argument("--mixed-precision", action="store_true", help="bfloat16 compute")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per configuration")
    parser.add_argument("--json", help="also write the rows and the machine to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(measure_one(**json.loads(args.child))))
        return 0

    preset = PRESETS[args.preset]
    grid = {k: getattr(args, k) or preset[k] for k in ("members", "widths", "batches", "steps")}
    rows = []
    for members in grid["members"]:
        for width in grid["widths"]:
            for batch in grid["batches"]:
                for layout in args.layouts:
                    config = {
                        "layout": layout,
                        "members": members,
                        "width": width,
                        "batch": batch,
                        "steps": grid["steps"],
                        "warmup": args.warmup,
                        "mixed_precision": args.mixed_precision,
                        "member": args.member,
                    }
                    rows.append(run_child(config, args.timeout))
                    print(f"  measured {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    info = provenance.environment()
    reference = matmul_tflops()
    print_table(rows, info, reference)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "machine": info,
                    "matmul_reference": reference,
                    "mixed_precision": args.mixed_precision,
                    "rows": rows,
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
