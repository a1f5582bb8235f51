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
# # Forward feature maps of trained networks: minimal vs extended features, and the fixed ETF
#
# Nam, Mingard, Lee, Hayou & Louis (2024, arXiv 2410.04264) follow the spectrum of a trained
# network's *feature operator* (the kernel `Phi(x)^T Phi(x')` of its penultimate features, the
# operator gradient descent on the readout sees) and call a network **minimal features (MF)**
# when about `C` eigenfunctions carry the targets and the features, **extended features (EF)**
# when it uses many more. `ufm` decides this with four scale-free checks (docs/feature_map.md,
# section 3): target mass `Pi*(C) >= 0.9`, centred effective rank `<= 2 (C - 1)`, centred gap
# `rho^c_C / rho^c_{C-1} <= 0.5` and `D_LR <= 0.5`: MF when all hold, EF when the first two fail,
# "mixed" otherwise.
#
# Then the fixed simplex-ETF classifier at `d = K` (Hoffer et al. 2018, arXiv 1801.04540; Zhu
# et al. 2021, arXiv 2105.02375), the setting the `d = K` landscape theorems of the UFM are used to
# justify: the same network with a learned classifier at a large penultimate width against a
# fixed ETF classifier with penultimate width `K`.
#
# `UFM_FAST=1` runs the `tiny` preset (MLP 64-128-128-10 on 500 digits, 2 seeds, 40 epochs; a few
# tens of seconds on 2 CPU cores, into a temporary folder). The full mode runs the `digits` and
# `etf` presets (5 seeds each; about an hour on 2 busy CPU cores, see
# benchmarks/feature_map_presets.md) into `ufm-results/`, the folders `ufm feature-map --preset
# digits` and `--preset etf` write: if they exist, the stored seeds are reused, nothing is trained
# again.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from ufm.core.cache import enable_compilation_cache
from ufm.systems import feature_map as fm

FAST = os.environ.get("UFM_FAST", "0") == "1"
enable_compilation_cache()  # compiled code shared with the CLI and the tests
if FAST:
    OUT = Path(tempfile.mkdtemp(prefix="ufm-feature-map-"))
    SPECTRA, ETF = fm.PRESETS["tiny"], fm.PRESETS["tiny"]
else:
    OUT = Path("ufm-results")
    SPECTRA, ETF = fm.PRESETS["digits"], fm.PRESETS["etf"]

# %% [markdown]
# ## 1. Training runs and the verdict over epochs
#
# Every configuration trains its seeds at once (`vmap` over seeds; sharded over devices with
# `devices=`), the feature operator is analysed at checkpoint epochs on the training samples, and
# each (seed, checkpoint) becomes one row in the common result store (`ufm.load_results`).

# %%
spectra = fm.run_preset(
    SPECTRA, OUT / f"feature-map-{SPECTRA.name}", mode="spectra", progress=False
)
rows = spectra.rows
print(f"{spectra.seeds_run} seed runs trained, {spectra.seeds_skipped} reused; {len(rows)} rows")
print(fm.verdict_table(rows))

# %% [markdown]
# The table is at each configuration's last checkpoint (mean ± std over seeds; `MF from` is the
# median first checkpoint epoch with an MF verdict). The criterion's numbers for one seed of the
# fully trained MLP and of the run that trains the last layer only:

# %%
last = rows[rows["epoch"] == rows.groupby("config")["epoch"].transform("max")]
cols = ["config", "seed", "pi_star_C", "effective_rank", "centred_gap", "d_lr", "verdict"]
cols += ["verdict_failed", "test_acc"]
print(last[last["seed"] == 0][cols].to_string(index=False))
final = last.groupby("config")["verdict"].agg(lambda v: sorted(set(v)))
assert final["mlp-mse"] == ["MF"], final  # full training with MSE: minimal features
assert final["mlp-mse-last-layer"] == ["EF"], final  # frozen random features: extended

# %% [markdown]
# ## 2. Spectra, mass curves and D_LR over epochs
#
# Full training concentrates the centred spectrum on the first `C - 1 = 9` directions (a drop
# after the dashed line) within a few epochs, and the first `C` eigenfunctions then carry almost
# all of the targets' mass (`Pi*(C)`); training only the last layer leaves the random features'
# slowly decaying spectrum in place: the outputs are fitted (`Pi_hat`) but the targets spread over
# many eigenfunctions.

# %%
fig = fm.plot_spectra(rows)
plt.show()
fig = fm.plot_pi_curves(rows)
plt.show()
fig = fm.plot_d_lr(rows)
plt.show()

# %% [markdown]
# ## 3. The fixed simplex-ETF classifier at d = K
#
# Same body, CE, Adam: a learned linear classifier on a wide penultimate layer against a fixed
# ETF classifier `W = sqrt(K/(K-1)) (I - J/K)` on `p = K` features (identity activation on the
# feature layer: with ReLU features a unit that dies removes its class, the `etf-10-relu` row of
# the full run). Memory is XLA's `memory_analysis()` of one compiled training step of one seed.

# %%
# fast mode: both parts of the tiny preset go into one folder (extend=True adds the second)
etf = fm.run_preset(ETF, OUT / f"feature-map-{ETF.name}", mode="etf", progress=False, extend=FAST)
print(fm.etf_table(etf.rows))
fig = fm.plot_etf_comparison(etf.rows)
plt.show()

# %% [markdown]
# Results and figures of both runs are in `OUT` (also readable with `ufm.load_results`); the
# command `ufm feature-map --preset NAME` prints the same tables and writes the figures to
# `DIR/figures`.

# %%
print(OUT)
