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
# # Dimensional collapse in self-supervised learning, and the spectral transformations against it
#
# Weng et al., "Modulate Your Spectrum in Self-Supervised Learning" (ICLR 2024, arXiv 2305.16789)
# view whitening-based SSL as a *spectral transformation* (ST) of the batch covariance of the
# embeddings `Z`: `Z_hat = U g(Lambda) U^T Z`. Plain cosine alignment of two augmented views
# collapses the embedding (a constant `Z` is a minimum); the power family `g = lambda^-p` keeps
# the order of the spectrum for `p < 1/2` (collapse stays), flattens it at `p = 1/2` (whitening)
# and reverses it for `p > 1/2`; IterNorm (`T = 4` Newton steps) only partly whitens, and INTL adds
# a trace loss to IterNorm. This notebook trains an MLP encoder + projector with each of them,
# several seeds at once (`vmap`), and measures the effective rank of `Z` and `Z_hat` over training,
# the spectra, and kNN / linear-probe accuracy (docs/spectral.md).
#
# `UFM_FAST=1` runs part of the `tiny` preset (latent-factor data of rank 4 in 16 dimensions;
# alignment, whitening and INTL x 2 seeds x 30 epochs, a few tens of seconds on 2 CPU cores, into
# a temporary folder; `ufm spectral --preset tiny` adds `p = 0.25`, `p = 0.75` and IterNorm).
# The full mode runs the `digits` (sklearn digits, `d = 64`, batch 128) and `synthetic` (rank 8 in
# 64 dimensions) presets, 12 methods x 5 seeds each (about 30-40 minutes each on 2 busy CPU
# cores, see benchmarks/spectral_presets.md) into `ufm-results/`, the folders `ufm spectral
# --preset digits` and `--preset synthetic` write: stored seeds are reused, not trained again.

# %%
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import ufm
from ufm.core.cache import enable_compilation_cache
from ufm.systems import spectral as sp

FAST = os.environ.get("UFM_FAST", "0") == "1"
enable_compilation_cache()  # compiled code shared with the CLI and the tests
if FAST:
    OUT = Path(tempfile.mkdtemp(prefix="ufm-spectral-"))
    RUNS = [(sp.PRESETS["tiny"], ("alignment", "whiten", "intl"))]
else:
    OUT = Path("ufm-results")
    RUNS = [(sp.PRESETS["digits"], None), (sp.PRESETS["synthetic"], None)]

# %% [markdown]
# ## 1. The spectral identities behind the methods
#
# For a batch covariance with eigenvalues `lambda`, the power ST outputs `lambda^(1 - 2p)` and
# IterNorm's output eigenvalues follow `e_{k+1} = e_k (3 - e_k)^2 / 4` from `e_0 = lambda / tr`.
# Small eigenvalues grow by at most `9/4` per step, so at `T = 4` they stay far from 1.

# %%
x = np.array([1e-3, 1e-2, 0.1, 0.5])
print("IterNorm output eigenvalues at T = 0..4 for x = lambda / tr Sigma =", x)
for t in range(5):
    print(t, np.round(np.asarray(sp.iternorm_spectrum(x, t)), 4))
lam = np.array([1.0, 0.1, 0.01])
for p in (0.0, 0.25, 0.5, 0.75, 1.0):
    out = np.asarray(sp.power_output_spectrum(lam, p, 1e-5))  # all above the floor 1e-5 tr
    print(f"power p = {p}: output spectrum {np.round(out, 4)} = lambda^{1 - 2 * p:g}")
    np.testing.assert_allclose(out, lam ** (1 - 2 * p), rtol=1e-5)

# %% [markdown]
# ## 2. Training: one row per method x seed x checkpoint in the common result store

# %%
results = {}
for preset, methods in RUNS:
    res = sp.run_preset(preset, OUT / f"spectral-{preset.name}", methods=methods, progress=False)
    results[preset.name] = res
    print(f"== {preset.name}: {res.seconds:.0f} s (compilation {res.compile_seconds:.0f} s)")
    print(sp.report_text(res.rows))

# %% [markdown]
# The qualitative result: plain alignment drives the effective rank of `Z` to about 1 (complete
# collapse), while whitening and INTL keep at least about as many directions as the data have
# (full mode: the power ST with `p < 1/2` and IterNorm without the trace loss stay collapsed to a
# few directions; `p >= 1/2` does not collapse).

# %%
for name, res in results.items():
    entries = {e["method"]: e for e in sp.method_entries(res.rows)}
    rank = sp.spec_data(res.specs[0]).rank or 10  # latent data: known rank; digits: 10 classes
    print(name, {k: round(v["erank_z"], 2) for k, v in entries.items()})
    assert entries["alignment"]["erank_z"] < 1.3, entries["alignment"]
    for label in ("whiten (feature)", "intl T=4 (feature)"):
        assert entries[label]["erank_z"] > 0.75 * min(rank, 10), (label, entries[label])

# %% [markdown]
# ## 3. Effective rank over training, spectra before / after the transform, accuracy against p

# %%
for name, res in results.items():
    fig = sp.plot_erank_over_training(res.rows)
    fig.suptitle(name)
    plt.show()
    fig = sp.plot_spectra(res.rows)
    plt.show()
    fig = sp.plot_accuracy_vs_p(res.rows)
    plt.show()
    sp.write_figures(OUT / f"spectral-{name}", res.rows)

# %% [markdown]
# The rows are also readable with `ufm.load_results` (one Parquet store per folder; the spectra
# are list columns); `ufm spectral --preset NAME` prints the same tables and writes the figures
# to `DIR/figures`.

# %%
rows = ufm.load_results(OUT / f"spectral-{RUNS[0][0].name}")
print(rows.groupby(["label", "epoch"])[["erank_z", "erank_zhat", "knn_acc_h"]].mean().round(3))
print(OUT)
