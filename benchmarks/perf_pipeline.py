"""The pipeline rows of ``benchmarks/perf.py``: ``ufm landscape`` cold and warm, and the ``d = K``
sweep, each as a fresh ``ufm`` subprocess timed from the outside (wall clock, start-up included:
what a user waits for).

* ``landscape``: ``ufm landscape`` on its embedded default, first with an empty compilation cache
  (a new temporary ``UFM_COMPILATION_CACHE`` folder: *cold*), then again with the cache the first
  run filled (*warm*); the compile seconds are the ones the command reports itself ("of which
  compilation"). Targets of issue 15 on 2 cores: cold <= 40 s, warm <= 15 s.
* ``native`` (also with ``sweep``): compiling ufm's native kernels into an empty
  ``UFM_NATIVE_CACHE`` in a fresh subprocess (once per machine; docs/kernels.md).
* ``sweep``: ``ufm sweep run experiments/sweeps/d_equals_k.toml`` (6 x 10^4 random starts with
  Hessian classification) into a temporary folder: as on a fresh machine (empty compilation
  cache and no compiled native kernels), with an empty compilation cache, and warm (its compile
  seconds, summed over the stored chunks, are reported beside the wall time; the C++ compile of
  the first row is not in them). Target: <= 60 s.

Each row checks the result it times (landscape: every random start at the closed form; sweep: every
random start a certified global minimum), so a fast wrong run does not count.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ufm(args, env_extra, timeout):
    env = dict(os.environ, **env_extra)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ufm", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        raise RuntimeError(f"ufm {' '.join(args)} failed (rc {proc.returncode}): {tail}")
    return wall, proc.stdout


def _landscape_ok(out: str) -> tuple[float, str]:
    m = re.search(r"of which compilation (\d+) s", out)
    comp = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) random starts: (\d+) of the (\d+) valid ones", out)
    ok = bool(m) and m.group(2) == m.group(3) == m.group(1)
    return comp, "ok" if ok else "MISMATCH"


def landscape_rows(timeout=600):
    """``[(name, wall s, compile s, check)]`` for ``ufm landscape`` cold then warm."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="ufm-perf-") as tmp:
        env = {"UFM_COMPILATION_CACHE": os.path.join(tmp, "cache")}
        for name in ("ufm landscape, cold (empty cache)", "ufm landscape, warm"):
            out_dir = os.path.join(tmp, name.split()[-1].strip("()"))
            wall, out = _ufm(["landscape", "--quiet", "--out", out_dir], env, timeout)
            comp, ok = _landscape_ok(out)
            rows.append((name, wall, comp, ok))
            print("  ", name, f"{wall:.1f} s (compile {comp:.0f} s)", ok, flush=True)
    return rows


def native_compile_rows(timeout=900):
    """``[(name, wall s, compile s, check)]`` for compiling each of ufm's native libraries into an
    empty ``UFM_NATIVE_CACHE`` (what the first job that needs one waits for, once per machine),
    each in a fresh subprocess; the check is that the library loads."""
    from ufm.kernels.native.build import LIBRARIES

    rows = []
    for library in LIBRARIES:
        code = (
            "import time; from ufm.kernels.native import build; t = time.perf_counter(); "
            f"lib = build.load({library!r}); dt = time.perf_counter() - t; "
            f"print(dt, lib is not None, build.unavailable_reason({library!r}))"
        )
        with tempfile.TemporaryDirectory(prefix="ufm-perf-") as tmp:
            env = {**os.environ, "UFM_NATIVE_CACHE": os.path.join(tmp, "native")}
            out = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        seconds, ok, *why = out.stdout.split(maxsplit=2)
        name = f"native library {library!r}: compile once per machine (empty UFM_NATIVE_CACHE)"
        row = (name, float(seconds), float(seconds), "ok" if ok == "True" else f"FAILED: {why}")
        print("  ", name, f"{float(seconds):.1f} s", row[3], flush=True)
        rows.append(row)
    return rows


def sweep_rows(timeout=1800):
    """``[(name, wall s, compile s, check)]`` for the ``d = K`` sweep: as on a fresh machine (empty
    compilation cache and no native library yet: the C++ compile of ufm's native kernels is in
    the wall time), then with an empty compilation cache, then a third run (fresh output folder)
    with the cache the second one filled. ``ufm sweep run`` without ``--devices``: one CPU device
    per core."""
    import numpy as np
    import pyarrow.parquet as pq

    rows = []
    with tempfile.TemporaryDirectory(prefix="ufm-perf-") as tmp:
        native = {"UFM_NATIVE_CACHE": os.path.join(tmp, "native")}
        runs = (
            ("fresh machine (empty cache, native kernels compiled in the run)", "cache0"),
            ("cold (empty cache)", "cache"),
            ("warm", "cache"),
        )
        for label, cache in runs:
            env = {"UFM_COMPILATION_CACHE": os.path.join(tmp, cache), **native}
            out_dir = os.path.join(tmp, "d_equals_k_" + label.split()[0])
            toml = os.path.join("experiments", "sweeps", "d_equals_k.toml")
            wall, _ = _ufm(["sweep", "run", toml, "--out", out_dir, "--quiet"], env, timeout)
            data = os.path.join(out_dir, "data")
            files = [os.path.join(data, f) for f in os.listdir(data)]
            cols = ["source", "class", "compile_seconds"]
            table = [pq.read_table(f, columns=cols) for f in files]
            src = np.concatenate([t.column("source").to_numpy(zero_copy_only=False) for t in table])
            cls = np.concatenate([t.column("class").to_numpy(zero_copy_only=False) for t in table])
            comp = sum(float(np.max(t.column("compile_seconds").to_numpy())) for t in table)
            random = src == "random"
            ok = int(random.sum()) == 60000 and bool(np.all(cls[random] == "global_min"))
            name = f"d = K sweep, {label} (6 x 10^4 starts, Hessian classification)"
            print("  ", name, f"{wall:.1f} s (compile {comp:.0f} s)", ok, flush=True)
            rows.append((name, wall, comp, "ok" if ok else "MISMATCH"))
    return rows
