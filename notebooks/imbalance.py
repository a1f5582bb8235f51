# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Imbalanced classes in the UFM: closed forms, convex certificates, minority collapse
#
# The UFM with class sizes `n_1..n_K` (`ufm.UFMSpec(n=(...))`, class-major samples). Formulas:
# docs/theory.md sections 9-10. This notebook (1) checks the MSE closed form for any class sizes
# against the convex program (`ufm.systems.ufm.solve_convex`, a certified lower bound) and against
# optimiser end points, (2) certifies cross-entropy minima, which have no closed form, with the
# convex program inside the Hessian classification (`with_convex_reference`), and (3) sweeps the
# imbalance ratio to locate minority collapse, comparing it with the closed form
# `n_minor <= lambda_W lambda_H N^2`. `UFM_FAST=1` (CI) runs small versions in well under a
# minute on 2 CPU cores; the full mode runs the `default` minority preset (several minutes).

# %%
import os
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np

import ufm
from ufm.systems import ufm as usys

FAST = os.environ.get("UFM_FAST", "0") == "1"
OUT = Path(tempfile.mkdtemp()) if FAST else Path("ufm-results/imbalance-notebook")
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. MSE: the closed form for any class sizes
#
# `f* = sum_i phi(sigma_i(Y_hat))` with `Y_hat = diag(sqrt(n))` (no bias) or
# `diag(sqrt(n)) - n sqrt(n)^T / N` (free bias) and `phi` the Huber-like function of section 10.
# The convex program gives a certified interval `[lower_bound, value]`; gradient descent from
# random starts, polished by Newton, lands on the closed form.

# %%
sizes, lw, lh = (12, 6, 3, 1), 4e-3, 8e-3
for bias in ("none",) if FAST else ("none", "free"):
    spec = ufm.UFMSpec(K=4, n=sizes, d=4, loss="mse", bias=bias, lambda_W=lw, lambda_H=lh)
    sol = usys.solve_convex_spec(spec, iterations=4000)
    p0 = ufm.init_batch(spec, jax.random.key(0), num_seeds=4 if FAST else 64)
    res = ufm.optimize(spec, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8))
    f = np.asarray(jax.vmap(lambda q, s=spec: ufm.loss(s, q))(ufm.polish(spec, res.params).params))
    opt = usys.imbalanced_optimum(spec)
    print(
        f"bias={bias}: f* = {opt.value:.12f}, convex [{float(sol.lower_bound):.12f}, "
        f"{float(sol.value):.12f}], max |f - f*| over {f.size} seeds = "
        f"{np.max(np.abs(f - opt.value)):.1e}, class-mean norms {opt.class_mean_norms.round(4)}"
    )

# %% [markdown]
# ## 2. Cross-entropy: certified global minima without a closed form
#
# `with_convex_reference` solves the program once on the host and attaches its value to the spec;
# `ufm.classify` then calls a critical point a global minimum when it has no negative curvature,
# meets the certificate and `|f - f_convex| <= f_tol`. A planted saddle (an optimum of the
# `d' = 2` problem, zero-padded) is a strict saddle with a clear value gap: `ufm.saddle_dims`
# lists the `d'` below the rank of the minimiser (here from the convex program's solution).

# %%
spec = usys.with_convex_reference(
    ufm.UFMSpec(K=4, n=(6, 6, 2, 1), d=4, loss="ce", lambda_W=5e-3, lambda_H=5e-3)
)
p0 = ufm.init_batch(spec, jax.random.key(1), num_seeds=3 if FAST else 32)
res = ufm.optimize(spec, p0, ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8))
pts = ufm.polish(spec, res.params).params
names = []
for i in range(p0.W.shape[0]):
    rec = ufm.classify(spec, jax.tree_util.tree_map(lambda x, i=i: x[i], pts), method="dense")
    names.append(ufm.CLASS_NAMES[int(rec.code)])
print("f_convex =", spec.f_convex, "| classes of the end points:", sorted(set(names)))
print("saddle_dims:", ufm.saddle_dims(spec))  # (1, 2): the minimiser has rank K - 1 = 3 here
small = spec.replace(d=2, f_convex=None)
r2 = ufm.optimize(
    small,
    ufm.init_batch(small, jax.random.key(2), num_seeds=1),
    ufm.OptimizerSettings(learning_rate=1.0, max_steps=3000, tol=1e-8),
)
saddle = usys.pad_params(
    jax.tree_util.tree_map(lambda x: x[0], ufm.polish(small, r2.params).params), 4
)
rec = ufm.classify(spec, saddle, method="dense")
print(
    f"planted saddle: {ufm.CLASS_NAMES[int(rec.code)]}, f - f_convex = {float(rec.f_gap):.4f}, "
    f"lambda_min = {float(rec.lambda_min):.2e}"
)

# %% [markdown]
# ## 3. Minority collapse
#
# Two majority classes of 20 samples, two minority classes of `20 / R`. As `R` grows the
# minority class means first grow relative to the majority ones, then turn towards each other
# and merge where `n_minor <= lambda^2 N^2` (CE and MSE, any bias: section 10). For MSE without
# bias they vanish at the same point; with cross-entropy they merge into one non-zero vector.

# %%
for loss in ("ce",) if FAST else ("mse", "ce"):
    cfg = usys.MINORITY_PRESETS["tiny" if FAST else "default"].replace(loss=loss)
    if FAST:  # the optimiser checks are in tests/systems/ufm/test_minority.py
        cfg = cfg.replace(check_seeds=0)
    result = usys.minority_collapse(cfg)
    print(f"--- {loss} ---")
    print(usys.minority_cli.minority_table(result), end="")
    fig = usys.plot_minority_collapse(result)
    ufm.report.save_figure(fig, OUT / f"minority_collapse_{loss}.png")
print("figures in", OUT)
