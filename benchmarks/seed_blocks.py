"""Seed blocks vs one vmap: wall time of ``ufm.optimize`` over many seeds (K = d = 10, n = 100).

``seed_block=None`` runs one ``vmap(scan)`` over all seeds; ``seed_block="auto"`` (the default on
one CPU device) runs ``lax.map`` over cache-sized blocks of seeds around it. Both give identical
results (checked here). Usage::

    python benchmarks/seed_blocks.py [--seeds 1000] [--steps 200] [--n 100]
"""

import argparse
import time

import jax

jax.config.update("jax_enable_x64", True)
import numpy as np  # noqa: E402

import ufm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--loss", default="ce")
    a = ap.parse_args()
    spec = ufm.UFMSpec(K=10, n=a.n, d=10, loss=a.loss, lambda_W=5e-3, lambda_H=5e-3)
    p0 = ufm.init_batch(spec, jax.random.key(0), a.seeds)
    out = {}
    for block in (None, "auto"):
        run = lambda: ufm.optimize(
            spec,
            p0,
            optimizer=ufm.gd(0.5),
            max_steps=a.steps,
            tol=0.0,  # noqa: E731
            chunk=a.steps // 2,
            seed_block=block,
        )
        jax.block_until_ready(run().params)  # compile
        times = []
        for _ in range(3):
            t = time.perf_counter()
            res = run()
            jax.block_until_ready(res.params)
            times.append(time.perf_counter() - t)
        out[block] = res
        print(
            f"seed_block={block!s:>5}: best {min(times):.2f} s, all {np.round(times, 2).tolist()} "
            f"({a.seeds} seeds x {a.steps} steps, {a.loss}, n = {a.n})"
        )
    same = all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(
            jax.tree_util.tree_leaves(out[None].params),
            jax.tree_util.tree_leaves(out["auto"].params),
        )
    )
    print("identical parameters:", same)


if __name__ == "__main__":
    main()
