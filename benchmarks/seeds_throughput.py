"""Steady-state throughput of the many-seed optimiser ``ufm.optimize`` against PyTorch baselines.

What is measured, in one process on one machine (ratios are only compared within a run):

* ``ufm.optimize`` (``jit(vmap(lax.scan))`` chunks over seeds), float32 and float64, full-batch
  gradient descent, ``tol=0`` so that no seed stops early, a chunk length that divides the step
  count. Compilation is timed separately: a warm-up call runs one chunk (compiling the chunk and the
  initial-state function), then the timed calls run ``T`` steps with the compiled code.
* A PyTorch baseline written the way published UFM code does it (Zhu et al. 2021, arXiv 2105.02375;
  Zhou et al. 2022, arXiv 2203.01238; Sukenik et al. 2023, arXiv 2305.13165): a Python
  ``for seed in seeds`` loop, ``torch.nn.Parameter`` ``W`` and ``H``, ``torch.optim.SGD``, the loss
  from ``torch.nn.CrossEntropyLoss`` / ``torch.nn.MSELoss`` plus explicit weight-decay terms, and a
  Python loop over steps with ``zero_grad(); backward(); step()``. Its cost per seed does not
  depend on the number of seeds, so it is timed once per configuration on ``--torch-seeds`` seeds.
* A stronger PyTorch baseline that published code does not use: the same code with a leading seed
  axis (``torch.bmm``), i.e. PyTorch vectorised over seeds. It separates what ``ufm`` gains from
  vectorising over seeds from what it gains from compiling the step loop.
* The machine's own matmul rate (2048 x 2048, float32 and float64; jax, numpy and torch) and the
  FLOP rate implied by ufm's seed-steps, so the table shows the fraction of the measured matmul
  rate that ufm achieves. The UFM matrices are tiny (10 x 10 times 10 x N): this is latency- and
  memory-bound work where the matmul peak is not reachable; the fraction is context, not a target.
* Peak resident memory (``resource.getrusage``) of many-seed float64 runs in fresh subprocesses.

Before timing, the script checks in float64 that ``ufm.optimize`` and both PyTorch baselines reach
the same final loss from the same initial point (ufm's initial parameters copied into torch).

Usage::

    python benchmarks/seeds_throughput.py            # full run (several minutes on 2 cores)
    python benchmarks/seeds_throughput.py --quick    # about a minute of CPU time
    python benchmarks/seeds_throughput.py --json out.json --threads 2

PyTorch is optional (``pip install -e ".[torch]"``); without it the torch columns read ``n/a``.
Thread counts are set before jax, numpy and torch are imported (``--threads``, default: all cores)
and are printed with the results. PyTorch's intra-op threads hurt it on tiny matrices on a busy
machine, so each torch measurement runs at the faster of 1 and ``--threads`` threads (chosen on a
short probe): the baseline gets its best setting. This is a benchmark, not a test: nothing here
asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

# -- configuration ---------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a ~1 minute version (n=10, S in 1,100)")
    p.add_argument("--losses", default="ce,mse")
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--d", type=int, default=10)
    p.add_argument("--n", default=None, help="samples per class, comma list (default 10,100)")
    p.add_argument(
        "--seeds", default=None, help="seed counts S, comma list (default 1,10,100,1000)"
    )
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--lam", type=float, default=5e-3, help="lambda_W = lambda_H")
    p.add_argument("--lr", type=float, default=0.5, help="gradient-descent learning rate")
    p.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="largest step count T per timed run (default 1000; quick 200)",
    )
    p.add_argument(
        "--target-gflop",
        type=float,
        default=None,
        help="estimated work per timed run; T = clip(work / (S flops_per_step)) "
        "(default 4; quick 1)",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="repeat a timed run until this many seconds are spent (best run kept)",
    )
    p.add_argument("--repeats", type=int, default=None, help="at most this many timed runs")
    p.add_argument(
        "--torch-seeds",
        type=int,
        default=None,
        help="seeds timed for the per-seed torch loop (default 4; quick 2)",
    )
    p.add_argument(
        "--torch-steps",
        type=int,
        default=None,
        help="steps per seed timed for the per-seed torch loop (default 200; quick 100)",
    )
    p.add_argument(
        "--torch-threads",
        default=None,
        help="torch thread counts tried, best kept (default: 1 and --threads)",
    )
    p.add_argument("--no-torch-batched", action="store_true")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="threads for XLA, BLAS and torch")
    p.add_argument("--json", default=None, help="write all results to this file")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    q = a.quick
    a.n = _ints(a.n or ("10" if q else "10,100"))
    a.seeds = _ints(a.seeds or ("1,100" if q else "1,10,100,1000"))
    a.losses = [s.strip() for s in a.losses.split(",") if s.strip()]
    a.dtypes = [s.strip() for s in a.dtypes.split(",") if s.strip()]
    a.max_steps = a.max_steps or (200 if q else 1000)
    a.target_gflop = a.target_gflop or (1.0 if q else 4.0)
    a.min_time = a.min_time if a.min_time is not None else (0.3 if q else 1.0)
    a.repeats = a.repeats or (2 if q else 3)
    a.torch_seeds = a.torch_seeds or (2 if q else 4)
    a.threads = a.threads or os.cpu_count()
    a.torch_steps = a.torch_steps or (100 if q else 200)
    a.torch_threads = (
        sorted(set(_ints(a.torch_threads))) if a.torch_threads else sorted({1, a.threads})
    )
    return a


def _ints(s):
    return [int(x) for x in str(s).split(",") if x.strip()]


def set_threads(threads: int) -> dict:
    """Fix thread counts of XLA, BLAS/OpenMP (and later torch) before the libraries load."""
    flags = os.environ.get("XLA_FLAGS", "")
    extra = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    os.environ["XLA_FLAGS"] = (flags + " " + extra).strip()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return {"XLA_FLAGS": os.environ["XLA_FLAGS"], "OMP/OPENBLAS/MKL_NUM_THREADS": threads}


# -- FLOP model ------------------------------------------------------------------------------


def flops_per_step(K: int, d: int, N: int, loss: str) -> int:
    """Estimated FLOPs of one full-batch GD step of the bias-free UFM (one seed).

    Matmuls: ``Z = W H``, ``dW = G H^T``, ``dH = W^T G``: ``3 * 2 K d N``. Elementwise on ``Z``
    (``K N`` entries): cross-entropy ~8 (max, subtract, exp, sum, log, softmax, minus one-hot,
    scale), MSE ~4. Per parameter (``P = K d + d N``): regulariser value and gradient, the update
    and ufm's per-step gradient norm, ~8. A model of the useful work, the same for every
    implementation; with d = K = 10 the elementwise part is not negligible.
    """
    P = K * d + d * N
    return 6 * K * d * N + (8 if loss == "ce" else 4) * K * N + 8 * P


# -- timing helpers --------------------------------------------------------------------------


def best_time(fn, repeats: int, min_time: float) -> tuple[float, int]:
    """Best wall time of ``fn()`` over up to ``repeats`` runs (stop once ``min_time`` is spent)."""
    times = []
    spent = 0.0
    while len(times) < repeats and (not times or spent < min_time):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return min(times), len(times)


def steps_for(S: int, fps: int, args) -> tuple[int, int]:
    """Step count ``T`` for a timed run of ``S`` seeds and the chunk length (which divides T).

    ``T`` is the largest of ``max_steps, 1000, 500, 250, 100, 50, 20`` (not above ``max_steps``)
    whose estimated work ``S T fps`` stays within ``--target-gflop``; the chunk is ``T/2`` up
    to 250 steps (so the warm-up call, one chunk, costs at most half a timed run).
    """
    want = args.target_gflop * 1e9 / (S * fps)
    candidates = sorted(
        {args.max_steps, *(t for t in (1000, 500, 250, 100, 50, 20) if t <= args.max_steps)},
        reverse=True,
    )
    T = next((t for t in candidates if t <= want), candidates[-1])
    if T % 250 == 0 and T > 250:
        return T, 250
    return T, (T // 2 if T % 2 == 0 else T)


# -- implementations -------------------------------------------------------------------------


def ufm_runner(ufm, jax, spec, p0, chunk, lr):
    opt = ufm.gd(lr)

    def run(steps):
        res = ufm.optimize(spec, p0, optimizer=opt, max_steps=steps, tol=0.0, chunk=chunk)
        jax.block_until_ready(res.params)
        return res

    return run


def torch_loop(torch, W0, H0, labels, Y, loss, lam, lr, T):
    """Published-code style: one seed at a time, Parameters, SGD, criterion + weight decay."""
    nn = torch.nn
    N = H0.shape[-1]
    finals = []
    for seed in range(W0.shape[0]):
        W = nn.Parameter(W0[seed].clone())
        H = nn.Parameter(H0[seed].clone())
        optimizer = torch.optim.SGD([W, H], lr=lr)
        if loss == "ce":
            criterion = nn.CrossEntropyLoss()
        else:
            criterion = nn.MSELoss(reduction="sum")

        def objective():
            Z = W @ H
            if loss == "ce":
                fit = criterion(Z.T, labels)
            else:
                fit = 0.5 * criterion(Z, Y) / N
            return fit + 0.5 * lam * W.pow(2).sum() + 0.5 * lam * H.pow(2).sum()

        for _ in range(T):
            optimizer.zero_grad()
            out = objective()
            out.backward()
            optimizer.step()
        with torch.no_grad():
            finals.append(objective().item())
    return finals


def torch_batched(torch, W0, H0, labels, Y, loss, lam, lr, T):
    """PyTorch vectorised over seeds: leading seed axis, ``torch.bmm``, sum of per-seed losses."""
    nn = torch.nn
    S, N = W0.shape[0], H0.shape[-1]
    W = nn.Parameter(W0.clone())
    H = nn.Parameter(H0.clone())
    optimizer = torch.optim.SGD([W, H], lr=lr)
    lab = labels.expand(S, N)

    def per_seed():
        Z = torch.bmm(W, H)  # (S, K, N)
        if loss == "ce":
            fit = nn.functional.cross_entropy(Z, lab, reduction="none").mean(dim=1)
        else:
            fit = 0.5 * (Z - Y).pow(2).sum(dim=(1, 2)) / N
        return fit + 0.5 * lam * W.pow(2).sum(dim=(1, 2)) + 0.5 * lam * H.pow(2).sum(dim=(1, 2))

    for _ in range(T):
        optimizer.zero_grad()
        per_seed().sum().backward()  # seeds are independent: the sum's gradient is per seed
        optimizer.step()
    with torch.no_grad():
        return per_seed().tolist()


# -- matmul peak -----------------------------------------------------------------------------


def matmul_rates(jax, jnp, np, torch, size=2048, repeats=3):
    out = {}
    flops = 2.0 * size**3
    for dt in ("float32", "float64"):
        rng = np.random.default_rng(0)
        a = rng.standard_normal((size, size)).astype(dt)
        b = rng.standard_normal((size, size)).astype(dt)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        f = jax.jit(jnp.matmul)
        f(ja, jb).block_until_ready()
        t, _ = best_time(lambda: f(ja, jb).block_until_ready(), repeats, 0.0)
        out[f"jax {dt}"] = flops / t / 1e9
        a @ b
        t, _ = best_time(lambda: a @ b, repeats, 0.0)
        out[f"numpy {dt}"] = flops / t / 1e9
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            ta @ tb
            t, _ = best_time(lambda: ta @ tb, repeats, 0.0)
            out[f"torch {dt}"] = flops / t / 1e9
    return out


# -- memory (fresh subprocess per measurement) -----------------------------------------------


def _proc_status_mib(field: str):
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status`` (Linux), in MiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def memory_child(arg: str) -> None:
    """``S,per_call,T``: optimise S float64 seeds in calls of per_call seeds; print peak RSS."""
    S, per_call, T = (int(x) for x in arg.split(","))
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    import ufm

    rss0 = _proc_status_mib("VmRSS")
    spec = ufm.UFMSpec(K=10, n=10, d=10, loss="ce", lambda_W=5e-3, lambda_H=5e-3, dtype="float64")
    key = jax.random.key(0)
    losses = []
    t0 = time.perf_counter()
    for start in range(0, S, per_call):
        seeds = np.arange(start, min(S, start + per_call))
        p0 = ufm.init_batch(spec, key, seeds=seeds)
        res = ufm.optimize(spec, p0, optimizer=ufm.gd(0.5), max_steps=T, tol=0.0, chunk=min(T, 10))
        losses.append(np.asarray(res.loss))  # keep only per-seed scalars, as a sweep store does
        del p0, res
    wall = time.perf_counter() - t0
    # ru_maxrss (KiB on Linux) is the process high-water mark; VmHWM is the same for this
    # address space only. They agree when the parent was small at spawn (it is: the parent
    # runs these children before it imports jax or torch).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "S": S,
                "per_call": per_call,
                "T": T,
                "rss_after_import_mib": rss0,
                "peak_rss_mib": peak,
                "vm_hwm_mib": _proc_status_mib("VmHWM"),
                "wall_s": wall,
                "param_mib_per_call": per_call * spec.num_params * 8 / 2**20,
            }
        )
    )


def memory_table(args):
    """Peak-memory runs, each in a fresh subprocess (spawned while this process is still small)."""
    T = 10 if args.quick else 20  # peak memory does not depend on the step count
    runs = [(1, 1), (1000, 1000)] + ([] if args.quick else [(10000, 10000), (10000, 1000)])
    rows = []
    for S, per_call in runs:
        out = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--memory-child",
                f"{S},{per_call},{T}",
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"memory: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


# -- main ------------------------------------------------------------------------------------


def machine_info(threads_info, torch):
    import jax
    import jaxlib
    import numpy as np
    import optax

    model = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "jax_devices": [str(dv) for dv in jax.devices()],
        **threads_info,
    }
    import ufm

    info["ufm"] = getattr(ufm, "__version__", "dev")
    return info


def main(argv=None):
    args = parse_args(argv)
    threads_info = set_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    load_start = os.getloadavg()
    # memory runs first: ru_maxrss of a child includes the parent's size at spawn time
    mem = [] if args.no_memory else memory_table(args)

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    import ufm

    try:
        import torch

        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    except ImportError:
        torch = None
        print(
            "torch is not installed: the torch columns are skipped (pip install -e '.[torch]')",
            file=sys.stderr,
        )

    info = machine_info(threads_info, torch)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    log(f"machine: {info['cpu']}, {info['cores']} cores, load {load_start}")

    # 1. matmul rate
    mm_start = matmul_rates(jax, jnp, np, torch)
    log("matmul GFLOP/s:", {k: round(v, 1) for k, v in mm_start.items()})

    K, d, lam, lr = args.K, args.d, args.lam, args.lr
    key = jax.random.key(0)

    def make(loss, n, dtype, S):
        spec = ufm.UFMSpec(K=K, n=n, d=d, loss=loss, lambda_W=lam, lambda_H=lam, dtype=dtype)
        p0 = ufm.init_batch(spec, key, S)
        return spec, p0

    def to_torch(p0, count=None):
        W = np.asarray(p0.W)[:count]
        H = np.asarray(p0.H)[:count]
        return torch.from_numpy(W.copy()), torch.from_numpy(H.copy())

    def torch_targets(n, dtype):
        lab = torch.from_numpy(np.repeat(np.arange(K), n)).long()
        Y = torch.from_numpy(ufm.systems.ufm.one_hot_targets(K, n, dtype).copy())
        return lab, Y

    def torch_best(run_steps, steps):
        """Time ``run_steps(steps)`` at the faster torch thread count (chosen on a short probe)."""
        probe = []
        for th in args.torch_threads:
            torch.set_num_threads(th)
            run_steps(2)  # first-call overheads (lazy imports in torch.optim)
            t, _ = best_time(lambda: run_steps(max(2, steps // 10)), 2, 0.0)
            probe.append((t, th))
        th = min(probe)[1]
        torch.set_num_threads(th)
        t, _ = best_time(lambda: run_steps(steps), args.repeats, args.min_time)
        torch.set_num_threads(args.threads)
        return t, th

    # 2. equivalence check (float64, same initial point)
    check = []
    T_check = 200
    if torch is not None:
        for loss in args.losses:
            for n in args.n:
                spec, p0 = make(loss, n, "float64", 3)
                res = ufm_runner(ufm, jax, spec, p0, 100, lr)(T_check)
                W0, H0 = to_torch(p0)
                lab, Y = torch_targets(n, "float64")
                f_loop = np.array(torch_loop(torch, W0, H0, lab, Y, loss, lam, lr, T_check))
                f_bat = np.array(torch_batched(torch, W0, H0, lab, Y, loss, lam, lr, T_check))
                f_ufm = np.asarray(res.loss)
                check.append(
                    {
                        "loss": loss,
                        "n": n,
                        "T": T_check,
                        "seeds": 3,
                        "ufm_final_loss": f_ufm.tolist(),
                        "max_abs_diff_loop": float(np.max(np.abs(f_ufm - f_loop))),
                        "max_abs_diff_batched": float(np.max(np.abs(f_ufm - f_bat))),
                    }
                )
        log("equivalence:", [(c["loss"], c["n"], c["max_abs_diff_loop"]) for c in check])

    # 3. throughput
    rows = []
    torch_loop_rate = {}
    for loss in args.losses:
        for n in args.n:
            N = n * K
            fps = flops_per_step(K, d, N, loss)
            for dtype in args.dtypes:
                for S in args.seeds:
                    T, chunk = steps_for(S, fps, args)
                    spec, p0 = make(loss, n, dtype, S)
                    run = ufm_runner(ufm, jax, spec, p0, chunk, lr)
                    t0 = time.perf_counter()
                    run(chunk)  # compiles the initial-state function and the chunk
                    warm = time.perf_counter() - t0
                    t_ufm, reps = best_time(lambda: run(T), args.repeats, args.min_time)
                    compile_s = max(warm - t_ufm * chunk / T, 0.0)
                    rate = S * T / t_ufm
                    row = {
                        "loss": loss,
                        "n": n,
                        "N": N,
                        "dtype": dtype,
                        "S": S,
                        "T": T,
                        "chunk": chunk,
                        "flops_per_seed_step": fps,
                        "ufm_compile_s": compile_s,
                        "ufm_time_s": t_ufm,
                        "ufm_repeats": reps,
                        "ufm_seed_steps_per_s": rate,
                        "ufm_gflops": rate * fps / 1e9,
                    }
                    if torch is not None:
                        lab, Y = torch_targets(n, dtype)
                        ck = (loss, n, dtype)
                        if ck not in torch_loop_rate:
                            _, pt = make(loss, n, dtype, args.torch_seeds)
                            Wt, Ht = to_torch(pt)
                            Tt = args.torch_steps
                            t_loop, th = torch_best(
                                lambda steps: torch_loop(
                                    torch, Wt, Ht, lab, Y, loss, lam, lr, steps
                                ),
                                Tt,
                            )
                            torch_loop_rate[ck] = (Wt.shape[0] * Tt / t_loop, th)
                        rl, th = torch_loop_rate[ck]
                        row["torch_loop_seed_steps_per_s"] = rl
                        row["torch_loop_threads"] = th
                        row["ratio_ufm_over_torch_loop"] = rate / rl
                        if not args.no_torch_batched:
                            Wt, Ht = to_torch(p0)
                            t_b, th = torch_best(
                                lambda steps: torch_batched(
                                    torch, Wt, Ht, lab, Y, loss, lam, lr, steps
                                ),
                                T,
                            )
                            row["torch_batched_seed_steps_per_s"] = S * T / t_b
                            row["torch_batched_threads"] = th
                            row["ratio_ufm_over_torch_batched"] = rate / (S * T / t_b)
                    rows.append(row)
                    log(
                        f"{loss} n={n} {dtype} S={S} T={T}: ufm {rate:,.0f} seed-steps/s"
                        + (
                            f", torch loop {row['torch_loop_seed_steps_per_s']:,.0f}"
                            if "torch_loop_seed_steps_per_s" in row
                            else ""
                        )
                        + (
                            f", torch batched {row['torch_batched_seed_steps_per_s']:,.0f}"
                            if "torch_batched_seed_steps_per_s" in row
                            else ""
                        )
                    )

    # the matmul rate again at the end: the best of both is the machine's rate during the run
    mm_end = matmul_rates(jax, jnp, np, torch)
    mm = {k: max(mm_start[k], mm_end[k]) for k in mm_start}
    peak = {dt: max(v for k, v in mm.items() if k.endswith(dt)) for dt in ("float32", "float64")}
    for r in rows:
        r["ufm_frac_of_matmul_peak"] = r["ufm_gflops"] / peak[r["dtype"]]
    load_end = os.getloadavg()
    info["load_average_start"] = load_start
    info["load_average_end"] = load_end

    print(render(info, args, mm, check, rows, mem))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "machine": info,
                    "args": {k: v for k, v in vars(args).items()},
                    "matmul_gflops": mm,
                    "matmul_gflops_start": mm_start,
                    "matmul_gflops_end": mm_end,
                    "equivalence": check,
                    "throughput": rows,
                    "memory": mem,
                },
                fh,
                indent=1,
            )
    bad = [c for c in check if max(c["max_abs_diff_loop"], c["max_abs_diff_batched"]) > 1e-10]
    if bad:
        print(f"\nWARNING: float64 final losses differ by more than 1e-10: {bad}", file=sys.stderr)
        return 1
    return 0


def _fmt(x, digits=3):
    if x is None:
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def _th(row, key):
    return f" ({row[key]})" if row.get(key) is not None else ""


def render(info, args, mm, check, rows, mem) -> str:
    L = []
    L.append(
        f"Machine: {info['cpu']}, {info['cores']} cores; load average "
        f"{', '.join(f'{x:.2f}' for x in info['load_average_start'])} (start), "
        f"{', '.join(f'{x:.2f}' for x in info['load_average_end'])} (end)."
    )
    L.append(
        f"Versions: python {info['python']}, jax {info['jax']}, jaxlib {info['jaxlib']}, "
        f"optax {info['optax']}, numpy {info['numpy']}, "
        f"torch {info['torch'] or 'not installed'}."
    )
    L.append(
        f"Threads: XLA_FLAGS=`{info['XLA_FLAGS']}`, OMP/OPENBLAS/MKL_NUM_THREADS="
        f"{info['OMP/OPENBLAS/MKL_NUM_THREADS']}, torch.get_num_threads()="
        f"{info['torch_threads']}."
    )
    L.append(
        f"Problem: bias-free UFM, K={args.K}, d={args.d}, lambda_W=lambda_H={args.lam}, "
        f"full-batch GD lr={args.lr}, tol=0 (no early stop)."
    )
    L.append("")
    L.append(
        "Matmul rate, 2048 x 2048 (GFLOP/s; best of 3 at the start and 3 at the end of the run):"
    )
    L.append("")
    L.append("| library | float32 | float64 |")
    L.append("|---|---:|---:|")
    for lib in ("jax", "numpy", "torch"):
        if f"{lib} float32" in mm:
            L.append(f"| {lib} | {mm[lib + ' float32']:.1f} | {mm[lib + ' float64']:.1f} |")
    if check:
        L.append("")
        L.append(
            "Same computation (float64, 3 seeds, ufm's initial point copied into torch, "
            f"{check[0]['T']} GD steps): max |final loss difference|"
        )
        L.append("")
        L.append("| loss | n | ufm vs torch loop | ufm vs torch batched |")
        L.append("|---|---:|---:|---:|")
        for c in check:
            L.append(
                f"| {c['loss']} | {c['n']} | {c['max_abs_diff_loop']:.1e} | "
                f"{c['max_abs_diff_batched']:.1e} |"
            )
    L.append("")
    torch_note = (
        f" The torch loop is timed on {args.torch_seeds} seeds x {args.torch_steps} steps (its "
        "cost per seed does not depend on S); both torch columns run at the faster (on a short "
        f"probe) of torch thread counts {args.torch_threads} (threads used in brackets)."
        if info["torch"]
        else " torch is not installed: its columns are n/a."
    )
    L.append(
        "Throughput in seed-steps per second (higher is better; steady state, best of up to "
        f"{args.repeats} runs).{torch_note} GFLOP/s from the FLOP model in `flops_per_step`; "
        "'% peak' is of the best 2048 x 2048 matmul rate above in the same dtype."
    )
    L.append("")
    L.append(
        "| loss | n | dtype | S | T | ufm compile s | ufm | ufm GFLOP/s | % peak | "
        "torch loop | ufm / torch loop | torch batched | ufm / torch batched |"
    )
    L.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        L.append(
            f"| {r['loss']} | {r['n']} | {r['dtype']} | {r['S']} | {r['T']} | "
            f"{r['ufm_compile_s']:.2f} | {_fmt(r['ufm_seed_steps_per_s'])} | "
            f"{r['ufm_gflops']:.2f} | {100 * r['ufm_frac_of_matmul_peak']:.1f} | "
            f"{_fmt(r.get('torch_loop_seed_steps_per_s'))}{_th(r, 'torch_loop_threads')} | "
            f"{_fmt(r.get('ratio_ufm_over_torch_loop'))} | "
            f"{_fmt(r.get('torch_batched_seed_steps_per_s'))}{_th(r, 'torch_batched_threads')} | "
            f"{_fmt(r.get('ratio_ufm_over_torch_batched'))} |"
        )
    if mem:
        L.append("")
        L.append(
            "Peak RSS of `ufm.optimize` runs (K=10, d=10, n=10, CE, float64, fresh "
            "subprocess each; `per call` seeds go into one `ufm.optimize` call):"
        )
        L.append("")
        L.append(
            "| seeds S | per call | steps | RSS after import MiB | peak RSS MiB (ru_maxrss) | "
            "VmHWM MiB | params per call MiB | wall s |"
        )
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        f = lambda x: "n/a" if x is None else f"{x:.0f}"  # noqa: E731
        for m in mem:
            L.append(
                f"| {m['S']} | {m['per_call']} | {m['T']} | {f(m['rss_after_import_mib'])} | "
                f"{m['peak_rss_mib']:.0f} | {f(m['vm_hwm_mib'])} | "
                f"{m['param_mib_per_call']:.1f} | {m['wall_s']:.1f} |"
            )
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
