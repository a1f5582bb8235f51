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
# # The UFM landscape at d = K
#
# Shen & Gu (2024, arXiv 2407.10702) prove that at `d = K` the cross-entropy and MSE unconstrained
# feature models have no spurious local minima: every critical point is a global minimum or a strict
# saddle. This notebook checks it numerically over many seeds and draws the figures of
# docs/theory.md section 6:
#
# 1. the closed-form optimum `f*` against `s = sqrt(n lW lH)`, with the collapse threshold `s = 1/K`
#    and the MSE bias phase boundary;
# 2. the distribution of `f - f*` after optimisation and polishing, per variant;
# 3. `lambda_min` against `f - f*` for every classified critical point, and the planted saddles
#    against the curvature bound;
# 4. neural-collapse metrics against the iteration.
#
# Set `UFM_FAST=1` for the quick version that CI runs (CE and MSE with a free bias, K = 3); the full
# version runs every variant, K in {3, 5} (`ufm landscape --K 3,5 --bias none,free,regularized`:
# 1008 random starts plus planted saddles and origins). Results go to a results
# folder (`ufm.load_results(folder)` reads it back; a rerun resumes it).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)


import ufm

FAST = os.environ.get("UFM_FAST", "0") == "1"

# %% [markdown]
# ## 1. The closed-form optimum against s
#
# CE: `f* = log K` once `s >= 1/K` (collapse to zero). MSE without bias: `K s (1 - K s / 2)`;
# with a free bias `(K-1) s (1 - K s / 2)`; with a regularised bias the optimum changes phase at
# `lambda_b* = K s / (1 - K s)`.

# %%
fig = ufm.systems.ufm.plot_optimal_value_vs_s(K=4, n=5, lambda_b=0.05)

# %% [markdown]
# ## 2. Many seeds against the closed form
#
# Every seed is optimised by gradient descent (`jit(vmap(scan))` over seeds), polished by Newton's
# method in float64 to `||grad f|| <= 1e-10`, and compared with `ufm.optimal_value`.

# %%
import tempfile

if FAST:
    config = ufm.LandscapeConfig(
        K=(3,),
        lambda_W=(5e-3,),
        seeds=6,
        optimizer=ufm.systems.ufm.LANDSCAPE_OPTIMIZER.replace(max_steps=3000),
    )
    folder = os.path.join(tempfile.mkdtemp(), "landscape")
else:
    # every loss and bias variant, K in {3, 5}: the full check
    config = ufm.LandscapeConfig(K=(3, 5), variants=ufm.systems.ufm.VARIANTS)
    folder = None  # ufm-results/landscape-<settings hash>, resumed on a rerun
run = ufm.run_landscape(config, folder)
rows, traces = run.rows, run.traces
first, classes = ufm.systems.ufm.landscape_tables(rows)
print(first, classes, ufm.systems.ufm.verdict(rows, config), sep="\n\n")

# %%
# Runs are the random starts only; planted saddles and origins are points, counted apart. Failed
# starts (diverged, NaN) are excluded from every statistic and counted.
random = rows["source"] == "random"
valid = ufm.report.valid_rows(rows)
converged = random & (rows["status"] == "converged")
at_opt = random & valid & rows["at_optimum"]
planted, origins = (int((rows["source"] == s).sum()) for s in ("planted", "origin"))
print(
    f"{random.sum()} runs (random starts): {converged.sum()} met the first-order tolerance, "
    f"{(random & ~valid).sum()} failed (excluded), {at_opt.sum()} of the {(random & valid).sum()} "
    f"valid ones are at f* after polishing. Besides: {planted} planted saddles and {origins} "
    "origins (points, not runs)."
)
assert rows["at_optimum"][random].all(), "a random start missed the closed-form optimum"
assert not set(rows["class"]) & {"spurious_min", "degenerate"}, "candidate counterexample"

# %%
fig = ufm.report.plot_gap_ecdf(rows)

# %% [markdown]
# ## 3. Every critical point is a global minimum or a strict saddle
#
# Besides the random starts, every configuration plants saddles: gradient descent started inside a
# coordinate subspace `R^{d'}` (`d' < K - 1`, or `< K` for MSE without bias) stays there and ends
# at the zero-padded `d'`-dimensional optimum, a non-global critical point; the origin is another.
# Each polished point is classified from its float64 Hessian. Left: `lambda_min` against
# `f - f*`; right: the planted saddles against the curvature bound
# `2 (sqrt(lW lH) - sigma_1) / (sqrt(lH/lW) + sqrt(lW/lH))` (tight when `lW = lH`).

# %%
fig = ufm.report.plot_lambda_min_vs_gap(rows)
fig = ufm.report.plot_saddle_bound(rows)
fig = ufm.report.plot_negative_counts(rows)

# %% [markdown]
# ## 4. Neural collapse along the way
#
# Median over seeds (band: 10%-90% quantiles) of NC1 (`Tr(Sigma_W Sigma_B^+)/K`), the simplex-ETF
# error of the centred classifier, the Zhu et al. NC3 (`W M` against the ETF) and the gradient norm.
# For MSE without bias the optimum is an orthogonal frame, not an ETF: its `nc2_etf_W` still
# vanishes because the ETF error is measured on the centred classifier.

# %%
fig = ufm.report.plot_nc_traces(traces)
