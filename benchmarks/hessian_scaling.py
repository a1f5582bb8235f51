"""Time to classify one UFM critical point: block-arrow exact inertia vs dense eigh vs Lanczos.

For ``K = d = 10`` CE without bias and ``n = 1 .. 10^4`` samples per class (``N = 10 .. 10^5``) the
script builds two critical points in closed form (theory.md section 2-3), so that every row is
checked against known answers even where no dense Hessian fits:

* ``min``: the global minimum (simplex ETF, ``h_{k,i} = sqrt(lW/(n lH)) w_k``): ``lambda_min = 0``,
  ``n_neg = 0``, ``n_zero = d(d-1)/2 - (d-r)(d-r-1)/2 = 45`` (``r = K - 1``);
* ``origin``: ``W = H = 0``, a strict saddle: ``lambda_min = (lW+lH)/2 - sqrt(((lW-lH)/2)^2 +
  s1^2)`` with ``s1 = sigma_1(grad_Z g)`` and ``n_neg = d (K - 1)``;
* ``random``: an unstructured point (``init_params``, scale 1): the hard case for the search (many
  negative eigenvalues near the bulk); checked against the dense spectrum where that fits, and its
  Lanczos error is measured against the block-arrow ``lambda_min``.

Columns, all after compilation (compile time in its own column), best of ``--repeats`` runs:

* ``block-arrow``: :func:`ufm.hessian.block_arrow_spectrum` (exact ``n_neg/n_zero/n_pos`` and a
certified
  ``lambda_min`` bracket); ``evals`` is the number of Schur-complement evaluations.
* ``dense``: :func:`ufm.hessian.hessian_spectrum_dense` (autodiff Hessian + float64 ``eigh``), only
while
  the ``(10 N + 100)^2`` Hessian is affordable (``--dense-max-n``).
* ``lanczos``: :func:`ufm.hessian.lanczos_extremes` with ``--matvecs`` Hessian-vector products and
full
  reorthogonalisation: extreme Ritz values only (no inertia), with their error against the known
  ``lambda_min``.

Also printed: the machine's float64 matmul rate (2000 x 2000 jax matmul) for reference, and the load
average. ``OPENBLAS_NUM_THREADS`` is set to 1 before numpy/jax load OpenBLAS (unless already set):
JAX's CPU LAPACK calls go through scipy's OpenBLAS, whose thread pool makes a 100 x 100 ``eigh``
take 0.15 s instead of 1 ms on a busy 2-core machine. Usage::

    python benchmarks/hessian_scaling.py            # N = 10 .. 10^5 (a few minutes)
    python benchmarks/hessian_scaling.py --quick    # N = 10 .. 10^3
    python benchmarks/hessian_scaling.py --ns 10000 --repeats 5   # the N = 10^5 acceptance row

This is a benchmark, not a test: it asserts nothing about speed, only checks answers.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import ufm  # noqa: E402

K = D = 10
LW = LH = 1e-4


def etf_minimum(spec):
    """Closed-form CE global minimum for ``d = K`` (theory.md section 2), bias ``none``."""
    n = spec.n
    s = np.sqrt(n * LW * LH)
    rho = (K - 1) / K * np.log((1 - (K - 1) * s) / s)
    M = np.sqrt(K / (K - 1)) * (np.eye(K) - 1.0 / K)  # unit-norm simplex ETF rows, in R^K
    W = np.sqrt(rho * np.sqrt(n * LH / LW)) * M[:, :D]
    H = np.repeat(np.sqrt(LW / (n * LH)) * W.T, n, axis=1)
    return ufm.UFMParams(jnp.asarray(W), jnp.asarray(H))


def origin(spec):
    return ufm.UFMParams(jnp.zeros((K, D)), jnp.zeros((D, spec.N)))


def origin_lambda_min(spec):
    G = np.asarray(ufm.systems.ufm.fit_grad(jnp.zeros((K, spec.N)), "ce", spec.n))
    s1 = np.linalg.norm(G, 2)
    return (LW + LH) / 2 - np.sqrt(((LW - LH) / 2) ** 2 + s1**2)


def timed(fn, *args, repeats=3):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return out, best, first - best


def matmul_gflops():
    a = jnp.asarray(np.random.default_rng(0).normal(size=(2000, 2000)))
    f = jax.jit(lambda x: x @ x)
    _, t, _ = timed(f, a, repeats=5)
    return 2 * 2000**3 / t / 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="N = 10 .. 1000 only")
    ap.add_argument(
        "--ns",
        default=None,
        help="comma-separated samples per class n (N = 10 n); default 1,10,...,10000",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--matvecs", type=int, default=64, help="Lanczos Krylov depth")
    ap.add_argument(
        "--dense-max-n",
        type=int,
        default=None,
        help="largest samples-per-class n for the dense eigh (default 10, N = 100; "
        "n = 100 takes ~3 min)",
    )
    args = ap.parse_args(argv)
    ns = [1, 10, 100] if args.quick else [1, 10, 100, 1000, 10000]
    if args.ns:
        ns = [int(v) for v in args.ns.split(",")]
    dense_max = args.dense_max_n if args.dense_max_n is not None else 10

    load0 = os.getloadavg()[0]
    gf = matmul_gflops()
    print(
        f"# Hessian classification scaling (K = d = {K}, CE, no bias, lW = lH = {LW:g}, float64)\n"
    )
    print(
        f"jax {jax.__version__}, {os.cpu_count()} CPU cores, float64 matmul (2000^3, jax): "
        f"{gf:.1f} GFLOP/s, load average {load0:.1f}, OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS')}\n"
    )
    print(
        "| N | point | params | block-arrow s | compile s | evals | n_neg/n_zero/n_pos "
        "| lambda_min err | bracket | dense s | lanczos s | lanczos err | check |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    spectrum = jax.jit(ufm.hessian.block_arrow_spectrum)
    dense = jax.jit(ufm.hessian.hessian_spectrum_dense)
    lanczos = jax.jit(ufm.hessian.lanczos_extremes, static_argnames="num_matvecs")
    for n in ns:
        spec = ufm.UFMSpec(K=K, n=n, d=D, loss="ce", lambda_W=LW, lambda_H=LH)
        for name, point, lam_ref, neg_ref, zero_ref in (
            ("min", etf_minimum(spec), 0.0, 0, D * (D - 1) // 2),
            ("origin", origin(spec), origin_lambda_min(spec), D * (K - 1), None),
            ("random", ufm.init_params(spec, jax.random.key(1), scale=1.0), None, None, None),
        ):
            res, t_ba, c_ba = timed(spectrum, spec, point, repeats=args.repeats)
            if lam_ref is None:  # no closed form: checked against dense where it fits
                lam_ref = float(res.lambda_min)
            err = abs(float(res.lambda_min) - lam_ref)
            ok = bool(res.converged) and err < 1e-10
            ok = ok and (neg_ref is None or int(res.n_neg) == neg_ref)
            ok = ok and (zero_ref is None or int(res.n_zero) == zero_ref)
            t_dense = "-"
            if n <= dense_max:
                ev, t, _ = timed(dense, spec, point, repeats=1)
                ev = np.asarray(ev)
                tol = float(res.zero_tol)
                cnt = (int((ev < -tol).sum()), int(((ev >= -tol) & (ev < tol)).sum()))
                ok = ok and cnt == (int(res.n_neg), int(res.n_zero))
                ok = ok and abs(ev[0] - float(res.lambda_min)) < 1e-10
                err = abs(ev[0] - float(res.lambda_min)) if name == "random" else err
                t_dense = f"{t:.3f}"
            elif name == "random":
                err = float("nan")  # no independent reference: the certified bracket is reported
            m = min(args.matvecs, spec.num_params)
            lz, t_lz, _ = timed(lanczos, spec, point, jax.random.key(0), m, repeats=1)
            print(
                f"| {spec.N} | {name} | {spec.num_params} | {t_ba:.3f} | {c_ba:.1f} | "
                f"{int(res.num_iters)} | {int(res.n_neg)}/{int(res.n_zero)}/{int(res.n_pos)} | "
                f"{err:.1e} | {float(res.lambda_min - res.lambda_min_lower):.1e} | {t_dense} | "
                f"{t_lz:.3f} | {abs(float(lz.lambda_min) - lam_ref):.1e} | "
                f"{'ok' if ok else 'MISMATCH'} |",
                flush=True,
            )
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.1f}. Lanczos: {args.matvecs} matvecs, "
        "full reorthogonalisation, no inertia; 'lanczos err' = |Ritz lambda_min - exact| "
        "(exact = closed form, or block-arrow for 'random'); 'lambda_min err' for 'random' is "
        "against dense eigh ('nan' where no dense run)."
    )


if __name__ == "__main__":
    main()
