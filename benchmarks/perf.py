"""One command for issue 15: every rate of the many-seed optimiser and the block-arrow Hessian as
ratios from a single run.

Canonical problem: UFM cross-entropy, ``K = d = 10``, ``n = 100`` (``N = 1000``), no bias,
``lambda_W = lambda_H = 5e-3``, plain gradient descent (``lr = 0.5``), float32, 1000 seeds, 400
steps, ``tol = 0`` (no seed stops early). Compilation is excluded (a warm-up call with the same
shapes compiles first; compile time is reported on its own). Rows, all timed in this process:

* ``GEMM``: the machine's float32 matmul rate measured by jax (2048 x 2048, best of 5, at the
  start at the default and the highest matmul precision and again after the optimiser rows: the
  highest reading counts, since a busy moment lowers one); the *roofline* is that rate divided by
  the ``6 K d N`` flops of one seed-step (``Z = W H``, ``W^T G``, ``G H^T``).
* ``ufm.optimize`` with its default kernel (on CPU the native chunk, docs/kernels.md) and with
  ``kernel="xla"`` (the XLA path), so one run shows both.
* ``ufm.optimize`` on 1 device and with its default (seeds sharded over all CPU devices).
* a plain-JAX reference loop of the same arithmetic (``jit`` of ``lax.map`` over blocks of 50
  seeds of ``lax.scan`` of ``vmap(step)``, ``step = p - lr * grad(loss)(p)`` with the textbook
  loss), on 1 device and under ``shard_map`` over all CPU devices.
* PyTorch written the way published UFM code does it (a Python loop over seeds and steps,
  ``nn.Parameter``, ``SGD``, ``CrossEntropyLoss``; timed on a few seeds: its cost per seed does not
  depend on the seed count) and a batched-seed variant (leading seed axis, ``torch.bmm``), if torch
  is importable (skipped with a note otherwise).
* the small-N regime (``n = 10``) and float64 (ufm vs the reference loop on all devices).
* block-arrow classification (:func:`ufm.hessian.block_arrow_spectrum`, float64) at
  ``N = 10^5`` (``n = 10^4``): the global minimum (closed form), the same with ``1e-9`` noise on
  ``H`` (features of a class no longer equal, as at a polished optimiser end point), the origin (a
  strict saddle) and a random non-critical point, each with the class reduction (default,
  docs/theory.md 3.9) and without it (``reduce=False``, the Schur complement only, which also
  checks the counts), plus the whole ``ufm.classify(method="block_arrow")``; and one
  Schur-complement evaluation.
* the dense float64 Hessian kernels of a ``d = K`` sweep chunk, per Hessian (``96 x 96``): the
  autodiff Hessian, ``jnp.linalg.eigvalsh`` against ``ufm.kernels.eigvalsh`` (values only), the
  ``eigh`` with vectors and the LU solve of the Newton polish.
* ``ufm landscape`` on its embedded default, cold (empty compilation cache) and warm, and the
  ``d = K`` sweep (``experiments/sweeps/d_equals_k.toml``), as fresh subprocesses
  (``benchmarks/perf_pipeline.py``).

On an accelerator the same command is meant to run unchanged (not yet tried: no GPU was lent
when it was written): the rows use the default backend's devices
(the device kind is recorded), the GEMM rate is measured at the default and at the highest matmul
precision (``jax.default_matmul_precision``), and the roofline uses the highest reading (on a
GPU, where the default precision may use TF32 passes, that is the default one).

The process gets one CPU device per core (``--devices``, default ``os.cpu_count()``; set through
``jax_num_cpu_devices`` before JAX starts: that is how a user shares the seeds over the cores).
Writes a markdown report (``--out``, default ``benchmarks/perf_results.md``) with the command, the
machine (CPU model, cores, accelerator, load average before and after) and the versions, and
appends it to ``BENCHMARKS.md`` as a dated section (``--append ''`` to skip). Usage::

    python benchmarks/perf.py            # everything (22 minutes on 2 cores, 5 of them the sweep)
    python benchmarks/perf.py --quick    # fewer steps and repeats, N = 10^4 block-arrow
    python benchmarks/perf.py --parts canonical,torch --append ''   # one part, no record

A benchmark, not a test: it asserts no speed; it checks that ufm and the reference loop reach the
same losses (printed) and that the block-arrow results match the closed forms.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="200 steps, 1 repeat, N = 10^4 Hessian")
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--steps", type=int, default=None, help="default 400 (quick 200)")
    p.add_argument("--devices", type=int, default=os.cpu_count(), help="CPU devices")
    p.add_argument("--repeats", type=int, default=None, help="best of (default 3, quick 1)")
    p.add_argument("--block", type=int, default=50, help="seed block of the reference loop")
    p.add_argument("--torch-seeds", type=int, default=3, help="seeds of the per-seed torch loop")
    p.add_argument(
        "--parts",
        default="canonical,torch,small,float64,hessian,dense,landscape,sweep",
        help="comma list of what to run (torch needs canonical; native: the one-time compile of "
        "each native library, also run with sweep)",
    )
    p.add_argument(
        "--append",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BENCHMARKS.md"),
        help="markdown file the report is appended to (a dated section); '' for none",
    )
    p.add_argument("--hessian-n", type=int, default=None, help="n of the Hessian rows (N = 10 n)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "perf_results.md"))
    a = p.parse_args(argv)
    a.steps = a.steps or (200 if a.quick else 400)
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.hessian_n = a.hessian_n or (1000 if a.quick else 10000)
    a.parts = {x.strip() for x in a.parts.split(",") if x.strip()}
    return a


ARGS = parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # LAPACK of tiny blocks: no thread pool

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", ARGS.devices)  # CPU only; accelerators: all of them
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import perf_pipeline  # noqa: E402  (benchmarks/ is on sys.path: the script's folder)
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import ufm  # noqa: E402

K = D = 10
LAM = 5e-3
LR = 0.5


def best(fn, repeats):
    """``(best seconds, first-call seconds, result)``; the first call compiles."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times), first, out


def log(row):
    print("  ", *(f"{x:.4g}" if isinstance(x, float) else x for x in row), flush=True)


def gemm_gflops(repeats=5, size=2048, precision=None):
    """float32 ``size^2`` matmul rate of jax on the default device (GFLOP/s), at the default
    matmul precision or at ``precision`` (e.g. ``"highest"``: no TF32 / bf16 passes on GPUs)."""
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
    f = jax.jit(lambda x: jnp.matmul(x, x, precision=precision))
    t, _, _ = best(lambda: f(a), repeats)
    return 2 * size**3 / t / 1e9


def device_kind():
    dev = jax.devices()[0]
    return f"{dev.platform}: {getattr(dev, 'device_kind', '?')} x {len(jax.devices())}"


# -- plain-JAX reference loop ----------------------------------------------------------------


def reference_runner(n, dtype, steps, block, devices):
    """The 15-line loop: ``jit(lax.map(block of seeds, lax.scan(vmap(step))))``, optionally under
    ``shard_map`` over ``devices`` CPU devices. Returns ``run(W, H) -> (W, H)``."""
    Y = jnp.asarray(np.repeat(np.eye(K), n, axis=1), dtype)

    def loss(p):
        W, H = p
        Z = W @ H
        fit = jnp.mean(jax.nn.logsumexp(Z, axis=0) - jnp.sum(Y * Z, axis=0))
        return fit + 0.5 * LAM * (jnp.sum(W * W) + jnp.sum(H * H))

    def step(p):
        g = jax.grad(loss)(p)
        return jax.tree_util.tree_map(lambda x, y: x - LR * y, p, g)

    def blocks(W, H):
        def one_block(p):
            return jax.lax.scan(lambda q, _: (jax.vmap(step)(q), None), p, None, length=steps)[0]

        S = W.shape[0]
        p = (W.reshape(S // block, block, *W.shape[1:]), H.reshape(S // block, block, *H.shape[1:]))
        Wo, Ho = jax.lax.map(one_block, p)
        return Wo.reshape(W.shape), Ho.reshape(H.shape)

    if devices == 1:
        return jax.jit(blocks), None
    mesh = Mesh(np.asarray(jax.devices()[:devices]), ("s",))
    f = jax.shard_map(blocks, mesh=mesh, in_specs=(P("s"), P("s")), out_specs=(P("s"), P("s")))
    return jax.jit(f), NamedSharding(mesh, P("s"))


def ref_loss(W, H, n):
    Y = np.repeat(np.eye(K), n, axis=1)
    W, H = np.asarray(W, np.float64), np.asarray(H, np.float64)
    Z = W @ H
    m = Z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[..., 0, :]
    fit = np.mean(lse - np.sum(Y * Z, axis=1), axis=-1)
    return fit + 0.5 * LAM * ((W**2).sum((1, 2)) + (H**2).sum((1, 2)))


# -- one optimiser configuration -------------------------------------------------------------


def optimiser_rows(n, dtype, seeds, steps, repeats, devices_all, label):
    """Rates of ufm.optimize (1 device, default) and the reference (1 device, all devices)."""
    spec = ufm.UFMSpec(K=K, n=n, d=D, loss="ce", lambda_W=LAM, lambda_H=LAM, dtype=dtype)
    p0 = ufm.init_batch(spec, jax.random.key(0), seeds)
    opt = ufm.gd(LR)
    chunk = steps // 2 if steps % 2 == 0 else steps
    rows, losses = [], {}
    work = seeds * steps

    def ufm_run(devs, kernel):
        def run():
            return ufm.optimize(
                spec,
                p0,
                optimizer=opt,
                max_steps=steps,
                tol=0.0,
                chunk=chunk,
                devices=devs,
                kernel=kernel,
            )

        return run

    native = "native" if ufm.kernels.native.available() else "not compiled"
    runs = (
        ("ufm.optimize, 1 device", 1, "auto"),
        ("ufm.optimize, default", "auto", "auto"),
        (f"ufm.optimize, default, XLA path (kernel='xla'; auto: {native})", "auto", "xla"),
    )
    for name, devs, kernel in runs:
        t, first, res = best(ufm_run(devs, kernel), repeats)
        rows.append((label, name, work / t, first - t))
        losses[name] = np.asarray(res.loss, np.float64)
        log(rows[-1])
    jdt = jnp.dtype(dtype)
    for devs in sorted({1, devices_all}):
        f, sh = reference_runner(n, jdt, steps, ARGS.block, devs)
        W, H = p0.W, p0.H
        if sh is not None:
            W, H = jax.device_put(W, sh), jax.device_put(H, sh)
        t, first, out = best(lambda f=f, W=W, H=H: f(W, H), repeats)
        name = f"JAX reference loop, {devs} device{'s' if devs > 1 else ''}"
        rows.append((label, name, work / t, first - t))
        losses[name] = ref_loss(*out, n)
        log(rows[-1])
    return rows, losses, p0


# -- PyTorch ---------------------------------------------------------------------------------


def torch_rows(p0, n, steps, seeds, repeats):
    try:
        import torch
    except ImportError:
        return [], "torch is not importable: PyTorch rows skipped (pip install torch)"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from seeds_throughput import torch_batched, torch_loop

    W0 = torch.from_numpy(np.asarray(p0.W, np.float32).copy())
    H0 = torch.from_numpy(np.asarray(p0.H, np.float32).copy())
    labels = torch.from_numpy(np.repeat(np.arange(K), n))
    Y = torch.from_numpy(np.repeat(np.eye(K), n, axis=1).astype(np.float32))
    rows = []
    best_threads = {}
    for name, fn, s, T in (
        ("PyTorch per-seed loop (published style)", torch_loop, ARGS.torch_seeds, steps),
        # the rate per seed-step does not depend on the step count: a short timed run suffices
        ("PyTorch batched seeds (bmm)", torch_batched, seeds, max(10, steps // 10)),
    ):
        rate = 0.0
        for threads in sorted({1, os.cpu_count()}):
            torch.set_num_threads(threads)
            fn(torch, W0[:s], H0[:s], labels, Y, "ce", LAM, LR, 2)  # warm-up
            for _ in range(1):
                t0 = time.perf_counter()
                fn(torch, W0[:s], H0[:s], labels, Y, "ce", LAM, LR, T)
                r = s * T / (time.perf_counter() - t0)
                if r > rate:
                    rate, best_threads[name] = r, threads
        rows.append(("canonical", f"{name}, {best_threads[name]} thread(s)", rate, float("nan")))
        log(rows[-1])
    note = f"torch {torch.__version__}; best of 1 and {os.cpu_count()} threads"
    return rows, note


# -- block-arrow Hessian ---------------------------------------------------------------------


def hessian_rows(n, repeats):
    lw = lh = 1e-4
    spec = ufm.UFMSpec(K=K, n=n, d=D, loss="ce", lambda_W=lw, lambda_H=lh, dtype="float64")
    s = np.sqrt(n * lw * lh)
    rho = (K - 1) / K * np.log((1 - (K - 1) * s) / s)
    M = np.sqrt(K / (K - 1)) * (np.eye(K) - 1.0 / K)
    W = np.sqrt(rho * np.sqrt(n * lh / lw)) * M[:, :D]
    H = np.repeat(np.sqrt(lw / (n * lh)) * W.T, n, axis=1)
    minimum = ufm.UFMParams(jnp.asarray(W), jnp.asarray(H))
    noise = 1e-9 * jax.random.normal(jax.random.key(2), minimum.H.shape, minimum.H.dtype)
    points = (
        ("minimum", minimum, 0, D * (D - 1) // 2),
        ("minimum + 1e-9 noise", minimum._replace(H=minimum.H + noise), None, None),
        (
            "saddle (origin)",
            ufm.UFMParams(jnp.zeros((K, D)), jnp.zeros((D, spec.N))),
            D * (K - 1),
            None,
        ),
        ("non-critical", ufm.init_params(spec, jax.random.key(1), scale=1.0), None, None),
    )
    # default: the class reduction (ufm.hessian.reduction) first; "Schur only": reduce=False
    spectrum = jax.jit(ufm.hessian.block_arrow_spectrum)
    schur_only = jax.jit(lambda p: ufm.hessian.block_arrow_spectrum(spec, p, reduce=False))
    # the search with the 12-step Lanczos start it had before num_matvecs defaulted to 0
    lanczos_start = jax.jit(
        lambda p: ufm.hessian.block_arrow_spectrum(spec, p, reduce=False, num_matvecs=12)
    )
    rows = []
    for name, point, neg, zero in points:
        t, first, res = best(lambda point=point: spectrum(spec, point), repeats)
        t0, _, ref = best(lambda point=point: schur_only(point), repeats)
        tl, _, lz = best(lambda point=point: lanczos_start(point), repeats)
        classify = lambda point=point: ufm.classify(spec, point, method="block_arrow")  # noqa: E731
        tc, _, rec = best(classify, max(1, repeats // 2))
        counts = lambda r: (int(r.n_neg), int(r.n_zero), int(r.n_pos))  # noqa: E731
        ok = bool(res.converged) and (neg is None or int(res.n_neg) == neg)
        ok = ok and (zero is None or int(res.n_zero) == zero) and counts(res) == counts(ref)
        ok = ok and float(res.lambda_min_lower) <= float(ref.lambda_min)
        ok = ok and float(ref.lambda_min_lower) <= float(res.lambda_min)
        inert = "/".join(str(c) for c in counts(res))
        ok = ok and counts(lz) == counts(ref)
        evals = f"{int(res.num_iters)} / {int(ref.num_iters)} / {int(lz.num_iters)}"
        verdict = ufm.PointClass(int(rec.code)).name.lower()
        check = "ok" if ok else "MISMATCH"
        rows.append((name, t, t0, tl, first - t, evals, inert, tc, verdict, check))
        log(rows[-1])
    # one Schur-complement evaluation at a shift below the spectrum
    arrow = jax.jit(lambda p: ufm.hessian.block_arrow(spec, p))(points[3][1])
    schur = jax.jit(lambda a, sig: a.schur(sig)[0])
    t, first, _ = best(lambda: schur(arrow, jnp.asarray(-1e-3)), repeats)
    nan = float("nan")
    rows.append(("one Schur evaluation S(sigma)", t, t, t, first - t, "1", "-", nan, "-", "-"))
    return spec.N, rows


# -- dense Hessian kernels of the landscape sweeps --------------------------------------------


def dense_rows(repeats, count=2048):
    """Per-point cost of the dense float64 Hessian work of a ``d = K`` sweep chunk (the sweep's CE
    problem, ``K = d = 4``, ``n = 5``: ``96 x 96`` Hessians, one at a time in ``lax.map`` as on
    CPU): the Hessian itself, eigenvalues by ``jnp.linalg.eigvalsh`` (jax computes the vectors
    too) and by ``ufm.kernels.eigvalsh`` (LAPACK job N; the classification), ``eigh`` with vectors
    (the polish's pseudo-inverse step) and the LU solve (the polish's regularised step); then
    ``ufm.polish`` and ``ufm.classify_batch`` of the heavy-ball end points at XLA level 0 and at
    the default level (:func:`ufm.core.jitting.full_optimisation`)."""
    from ufm.hessian.dense import hessian_dense

    spec = ufm.UFMSpec(K=4, n=5, d=4, loss="ce", lambda_W=5e-3, lambda_H=5e-3, dtype="float64")
    pts = ufm.init_batch(spec, jax.random.key(0), count)
    build = jax.jit(lambda ps: jax.lax.map(lambda p: hessian_dense(spec, p)[0], ps))
    Hs = build(pts)
    g = jnp.ones(Hs.shape[:2], Hs.dtype)
    fns = {
        "Hessian (autodiff)": (build, (pts,)),
        "jnp.linalg.eigvalsh": (jax.jit(lambda H: jax.lax.map(jnp.linalg.eigvalsh, H)), (Hs,)),
        "ufm.kernels.eigvalsh": (jax.jit(lambda H: jax.lax.map(ufm.kernels.eigvalsh, H)), (Hs,)),
        "jnp.linalg.eigh (vectors)": (jax.jit(lambda H: jax.lax.map(jnp.linalg.eigh, H)), (Hs,)),
        "LU solve (jnp.linalg.solve)": (
            jax.jit(lambda H, g: jax.lax.map(lambda a: jnp.linalg.solve(*a), (H, g))),
            (Hs, g),
        ),
    }
    rows, outs = [], {}
    for name, (fn, args) in fns.items():
        t, first, out = best(lambda fn=fn, args=args: fn(*args), repeats)
        outs[name] = out
        rows.append((name, t / count * 1e3, first - t))
        log(rows[-1])
    # the polish and the classification of the same points (near-critical: heavy ball as in the
    # sweep) at XLA level 0 (small specs) and at the default level (large sweep configurations)
    res = ufm.optimize(
        spec, pts, optimizer=ufm.momentum(0.5, 0.9), max_steps=5000, tol=1e-8, chunk=250
    )
    near = res.params
    for level, full in (("level 0", False), ("default level", True)):
        with ufm.core.jitting.full_optimisation(full):
            t, first, _ = best(lambda: ufm.polish(spec, near).loss, repeats)
            rows.append((f"ufm.polish (Newton), XLA {level}", t / count * 1e3, first - t))
            log(rows[-1])
            t, first, _ = best(lambda: ufm.classify_batch(spec, near)["lambda_min"], repeats)
            rows.append((f"ufm.classify_batch (dense), XLA {level}", t / count * 1e3, first - t))
            log(rows[-1])
    a, b = np.asarray(outs["jnp.linalg.eigvalsh"]), np.asarray(outs["ufm.kernels.eigvalsh"])
    dev = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    return Hs.shape[1], count, rows, dev


# -- report ----------------------------------------------------------------------------------


def machine():
    model = platform.processor() or "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return model


def main():
    a = ARGS
    load0 = os.getloadavg()
    cmd = "python benchmarks/perf.py " + " ".join(sys.argv[1:])
    a.devices = min(a.devices, len(jax.devices()))
    gf = gemm_gflops()
    gf_high = gemm_gflops(precision="highest")
    print(f"float32 GEMM (jax, 2048^2): {gf:.0f} GFLOP/s ({gf_high:.0f} at highest precision)")
    rows, all_losses, note = [], [], ""
    if "canonical" in a.parts:
        rows, losses, p0 = optimiser_rows(
            100, "float32", a.seeds, a.steps, a.repeats, a.devices, "canonical"
        )
        all_losses.append(("canonical", losses))
        if "torch" in a.parts:
            trows, note = torch_rows(p0, 100, a.steps, a.seeds, a.repeats)
            rows += trows
    if "small" in a.parts:
        r2, l2, _ = optimiser_rows(10, "float32", a.seeds, a.steps, a.repeats, a.devices, "n = 10")
        rows += r2
        all_losses.append(("n = 10", l2))
    if "float64" in a.parts:
        r3, l3, _ = optimiser_rows(
            100, "float64", a.seeds, a.steps, a.repeats, a.devices, "float64"
        )
        rows += r3
        all_losses.append(("float64", l3))
    # the roofline uses the best float32 GEMM rate measured: at the start, at the highest matmul
    # precision (the same product on CPU) and after the optimiser rows (a busy moment lowers a
    # reading, so the highest one is the machine's rate and the percentages are conservative)
    gf_end = gemm_gflops()
    gf = max(gf, gf_end, gf_high)
    roof = gf * 1e9 / (6 * K * D * K * 100)
    print(f"float32 GEMM again: {gf_end:.0f} GFLOP/s; roofline {roof:.3g} seed-steps/s")
    checks = []
    for label, ls in all_losses:
        ref = ls["JAX reference loop, 1 device"]
        dev = max(float(np.max(np.abs(v - ref) / np.abs(ref))) for v in ls.values())
        checks.append(f"{label}: largest relative difference of final losses {dev:.1e}")
    hrows, N = [], None
    if "hessian" in a.parts:
        N, hrows = hessian_rows(a.hessian_n, a.repeats)
    drows = None
    if "dense" in a.parts:
        drows = dense_rows(a.repeats)
    prows = []
    if "landscape" in a.parts:
        prows += perf_pipeline.landscape_rows()
    if "sweep" in a.parts or "native" in a.parts:
        prows.extend(perf_pipeline.native_compile_rows())
    if "sweep" in a.parts:
        prows += perf_pipeline.sweep_rows()
    load1 = os.getloadavg()

    def base(label):
        for lab, name, rate, _ in rows:
            if lab == label and name == "JAX reference loop, 1 device":
                return rate
        return float("nan")

    torch_b = next((r[2] for r in rows if r[1].startswith("PyTorch batched")), float("nan"))
    lines = [
        "# Performance of the many-seed optimiser and the block-arrow Hessian (issue 15)",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {machine()}, {os.cpu_count()} cores; JAX devices {device_kind()} ({a.devices} "
        f"used); load average {load0[0]:.2f} at the start, {load1[0]:.2f} at the end  ",
        f"Versions: jax {jax.__version__}, numpy {np.__version__}, python "
        f"{platform.python_version()}; {note or 'torch not run'}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Canonical problem: UFM CE, K = d = {K}, n = 100, no bias, lambda = {LAM:g}, GD lr "
        f"{LR}, {a.seeds} seeds, {a.steps} steps, tol = 0; compile excluded (own column), best of "
        f"{a.repeats}. float32 GEMM rate (jax, 2048^2, the best of three readings): "
        f"**{gf:.0f} GFLOP/s** ({gf_high:.0f} at the highest matmul precision); roofline "
        f"6 K d N flops per seed-step: **{roof:.3g} seed-steps/s** (n = 100).",
        "",
    ]
    if rows:
        lines += [
            "| problem | implementation | seed-steps/s | vs reference (1 dev) | of roofline | "
            "vs torch batched | compile s |",
            "|---|---|---|---|---|---|---|",
        ]
    for label, name, rate, comp in rows:
        r = gf * 1e9 / (6 * K * D * K * (10 if label == "n = 10" else 100))
        if label == "float64":
            r = float("nan")  # the roofline is a float32 figure
        lines.append(
            f"| {label} | {name} | {rate:.3g} | {rate / base(label):.2f} | "
            f"{'-' if r != r else f'{rate / r:.0%}'} | "
            f"{'-' if torch_b != torch_b else f'{rate / torch_b:.1f}'} | "
            f"{'-' if comp != comp else f'{max(comp, 0.0):.1f}'} |"
        )
    if checks:
        lines += ["", "Numerics: " + "; ".join(checks) + ".", ""]
    if hrows:
        lines += [
            f"Block-arrow classification (`ufm.hessian.block_arrow_spectrum`, float64, K = d = "
            f"{K}, N = {N}, lambda = 1e-4), best of {a.repeats}; default = class reduction first "
            "(docs/theory.md 3.9), Schur only = `reduce=False` (section 3.8), Lanczos start = "
            "Schur only with `num_matvecs=12` (the start the search had before it defaulted to "
            "0); `ufm.classify` = the whole classification (`method='block_arrow'`: inertia at "
            "both tolerances, lambda_pos_min, certificate):",
            "",
            "| point | seconds (default) | seconds (Schur only) | seconds (Lanczos start) | "
            "compile s | Schur evaluations (default / Schur only / Lanczos start) | "
            "n_neg/n_zero/n_pos | `ufm.classify` s | verdict | check |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, t, t0, tl, comp, ev, inert, tc, verdict, ok in hrows:
            lines.append(
                f"| {name} | {t:.3f} | {t0:.3f} | {tl:.3f} | {max(comp, 0.0):.1f} | {ev} | "
                f"{inert} | {'-' if tc != tc else f'{tc:.3f}'} | {verdict} | {ok} |"
            )
        lines.append("")
    if drows:
        n_par, count, dr, dev = drows
        lines += [
            f"Dense float64 Hessian kernels of the d = K sweep ({count} Hessians of {n_par} x "
            f"{n_par}, CE, one at a time in `lax.map`), best of {a.repeats}; the two eigenvalue "
            f"routines agree to {dev:.1e} relative:",
            "",
            "| kernel | ms per Hessian (point) | compile s |",
            "|---|---|---|",
        ]
        for name, ms, comp in dr:
            lines.append(f"| {name} | {ms:.3f} | {max(comp, 0.0):.1f} |")
        lines.append("")
    if prows:
        lines += [
            "Pipelines (fresh `ufm` subprocesses, wall clock including start-up; targets: "
            "landscape cold <= 40 s, warm <= 15 s, d = K sweep <= 60 s):",
            "",
            "| run | wall s | of which compile s | check |",
            "|---|---|---|---|",
        ]
        for name, wall, comp, ok in prows:
            lines.append(f"| {name} | {wall:.1f} | {comp:.0f} | {ok} |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    with open(a.out, "w") as fh:
        fh.write(text)
    print(f"written to {a.out}")
    if a.append:
        append_section(a.append, text)
        print(f"appended to {a.append}")


#: The heading under which :func:`append_section` adds one dated section per run.
RUNS_HEADING = "## Runs of `benchmarks/perf.py` (appended by the script)"


def append_section(path, text):
    """Append ``text`` (the report, its title demoted to a dated level-3 heading) to ``path``,
    under :data:`RUNS_HEADING` (added once, at the end of the file)."""
    body = text.split("\n", 1)[1].lstrip("\n")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    old = open(path).read() if os.path.exists(path) else ""
    with open(path, "a") as fh:
        if RUNS_HEADING not in old:
            fh.write(("\n" if old and not old.endswith("\n") else "") + "\n" + RUNS_HEADING + "\n")
        fh.write(f"\n### {stamp}\n\n{body.rstrip()}\n")


if __name__ == "__main__":
    main()
