"""Certify UFM optimiser end points for random class sizes with the convex program.

For every number of classes ``K`` and loss/bias variant, draw random class sizes and lambdas,
solve the convex program of docs/theory.md section 9 (vmapped over the configurations of one
``K`` and variant; its duality gap is printed), run the UFM optimiser from ``--seeds`` random
starts (gradient descent, then Newton polishing, ``d = K``) and report, per configuration, the
largest ``f - lower_bound`` over the seeds (every end point with ``f - lower_bound <= tol`` is
certified within ``tol`` of the global minimum) and the largest gradient norm.

    python experiments/imbalance.py --K 3,5,10 --configs 2 --seeds 64

Writes nothing; prints one line per configuration and a summary.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import ufm  # noqa: E402
from ufm.core.cliargs import ints, words  # noqa: E402
from ufm.systems.ufm import solve_convex  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--K", type=ints, default=(3, 5, 10))
    p.add_argument(
        "--variants", type=words, default=("ce-none", "ce-free", "mse-none", "mse-regularized")
    )
    p.add_argument("--configs", type=int, default=2, help="random configurations per K and variant")
    p.add_argument("--seeds", type=int, default=64)
    p.add_argument("--max-size", type=int, default=8, help="class sizes drawn from 1..MAX_SIZE")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--tol", type=float, default=1e-7, help="certification tolerance on f - D")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    settings = ufm.OptimizerSettings(learning_rate=1.0, max_steps=args.steps, tol=1e-8)
    total = certified = 0
    worst = 0.0
    t0 = time.perf_counter()
    for K in args.K:
        for variant in args.variants:
            loss, bias = variant.split("-")
            sizes = rng.integers(1, args.max_size + 1, size=(args.configs, K))
            lw = 10.0 ** rng.uniform(-3, -1.7, args.configs)
            lh = 10.0 ** rng.uniform(-3, -1.7, args.configs)
            lb = 1e-2 if bias == "regularized" else 0.0
            sol = solve_convex(
                K, sizes, loss=loss, bias=bias, lambda_W=lw, lambda_H=lh, lambda_b=lb
            )
            for i in range(args.configs):
                spec = ufm.UFMSpec(
                    K=K,
                    n=tuple(int(v) for v in sizes[i]),
                    d=K,
                    loss=loss,
                    bias=bias,
                    lambda_W=float(lw[i]),
                    lambda_H=float(lh[i]),
                    lambda_b=lb,
                )
                p0 = ufm.init_batch(spec, jax.random.key(i), num_seeds=args.seeds)
                pts = ufm.polish(spec, ufm.optimize(spec, p0, settings).params).params
                f = np.asarray(jax.vmap(lambda q, s=spec: ufm.loss(s, q))(pts))
                g = np.asarray(jax.vmap(lambda q, s=spec: ufm.grad_norm(s, q))(pts))
                excess = f - float(sol.lower_bound[i])
                ok = int(np.sum(excess <= args.tol))
                total += f.size
                certified += ok
                worst = max(worst, float(np.max(excess)))
                print(
                    f"K={K} {variant:16s} n={spec.class_sizes} lW={lw[i]:.2e} lH={lh[i]:.2e}: "
                    f"gap {float(sol.gap[i]):.1e}, max f - D {np.max(excess):.2e}, "
                    f"median {np.median(excess):.1e}, max |grad| {np.max(g):.1e}, "
                    f"certified {ok}/{f.size}",
                    flush=True,
                )
    print(
        f"certified {certified}/{total} end points at f - D <= {args.tol:g}; largest f - D "
        f"{worst:.2e}; {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
