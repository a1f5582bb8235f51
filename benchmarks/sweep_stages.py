"""Stage times of the ``d = K`` sweep's chunks: optimise, polish and every analysis.

Runs ``ufm.runs.sweep.run_chunk`` on chunks of random starts of one configuration of
``experiments/sweeps/d_equals_k.toml`` with the sweep's settings (XLA's default optimisation
level, as a large sweep runs) and prints the seconds of each stage from ``on_phase`` timestamps;
the first chunk includes compilation. ``--seed-blocks`` instead times ``ufm.optimize`` alone on
the chunk's starts for the given ``seed_block`` values (``None``: one ``vmap``). Usage::

    python benchmarks/sweep_stages.py [--devices 2] [--config 0] [--chunks 3] [--size 2004]
    python benchmarks/sweep_stages.py --seed-blocks 16,128,256,None [--devices 2] [--config 0]

(``--config`` indexes the expanded grid: 0 CE no bias, 1 CE free bias, 2 MSE no bias, ...)
"""

import argparse
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=2, help="CPU devices (one per core is best)")
    ap.add_argument("--config", type=int, default=0, help="index into the expanded grid")
    ap.add_argument("--chunks", type=int, default=3)
    ap.add_argument("--size", type=int, default=2004, help="starts per chunk")
    ap.add_argument("--seed-blocks", default=None, help="e.g. 16,128,None: time ufm.optimize")
    a = ap.parse_args()

    import jax

    jax.config.update("jax_num_cpu_devices", a.devices)
    jax.config.update("jax_enable_x64", True)
    import numpy as np

    import ufm
    from ufm.core.jitting import full_optimisation
    from ufm.runs.sharding import seed_mesh, shard_seeds
    from ufm.runs.sweep import run_chunk

    spec = ufm.load_sweep_spec(os.path.join(ROOT, "experiments", "sweeps", "d_equals_k.toml"))
    config = spec.expand()[0][a.config]
    mesh = seed_mesh(a.devices)
    print(f"{config.label}: {a.devices} CPU device(s), chunks of {a.size} starts", flush=True)
    if a.seed_blocks:
        p0, _ = ufm.make_starts(config.spec, ["random"] * a.size, np.arange(a.size))
        p0 = shard_seeds(p0, mesh)
        opt = spec.optimizer
        for text in a.seed_blocks.split(","):
            block = None if text.strip() == "None" else int(text)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                res = ufm.optimize(
                    config.spec,
                    p0,
                    optimizer=opt.transform(),
                    max_steps=opt.max_steps,
                    tol=opt.tol,
                    chunk=opt.chunk,
                    seed_block=block,
                )
                jax.block_until_ready(res.params)
                times.append(time.perf_counter() - t0)
            print(
                f"seed_block={block}: first {times[0]:.2f} s (with compile), "
                f"best {min(times[1:]):.3f} s, steps max {int(np.max(res.steps))}",
                flush=True,
            )
        return 0
    for k in range(a.chunks):
        seeds = np.arange(k * a.size, (k + 1) * a.size)
        marks = []
        t0 = time.perf_counter()
        with full_optimisation(True):
            cols = run_chunk(
                config.spec,
                seeds,
                mesh,
                optimizer=spec.optimizer,
                analyses=spec.analyses,
                on_phase=lambda name: marks.append((name, time.perf_counter())),
                pad_to=a.size,
            )
        marks.append(("end", time.perf_counter()))
        stages = " ".join(
            f"{name}={marks[i + 1][1] - t:.2f}" for i, (name, t) in enumerate(marks[:-1])
        )
        print(
            f"chunk {k}: {marks[-1][1] - t0:.2f} s ({stages}); optimiser steps max "
            f"{int(cols['steps'].max())}, median {np.median(cols['steps']):.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
