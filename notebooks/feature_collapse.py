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
# # Feature collapse
#
# Laurent, von Brecht and Bresson, *Feature collapse* (arXiv 2305.16162, ICLR 2024): when words
# play the same role in a task, a trained network gives them the same representation. The paper
# makes this precise on a toy language model and proves which *kind* of collapse the global
# minimisers of the regularised risk have:
#
# * **type I** (every word equally frequent, no LayerNorm): all words of a concept share one
#   vector, the concept vectors form a simplex, with a norm the theory predicts;
# * **type III** (Zipf word frequencies, no LayerNorm): the directions still collapse, but the
#   norms depend on the word frequency, and rare words generalise badly;
# * **type II** (with LayerNorm, any frequencies): LayerNorm equalises the norms, the collapse is
#   complete again, and so is generalisation.
#
# This notebook tells that story with `ufm.systems.feature_collapse`: (1) the data model, (2) the
# reduced problems and the paper's constants, (3) type I, (4) the Zipf generalisation gap that
# LayerNorm closes (types III and II), (5) the type-III closed form. `UFM_FAST=1` trains tiny
# versions for a few epochs (about 30 s on 2 CPU cores; the pictures are then only qualitative);
# the full mode runs the `small`, `zipf-gap` and `type3` presets of `ufm feature-collapse`
# (about 25 minutes on 2 CPU cores; the numbers of docs/feature_collapse.md).

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from ufm.systems import feature_collapse as fc

FAST = os.environ.get("UFM_FAST", "0") == "1"
OUT = tempfile.mkdtemp(prefix="fc-notebook-") if FAST else "ufm-results/notebook-feature-collapse"

# %% [markdown]
# ## 1. The data model
#
# `n_c = 3` concepts of `s_c = n_w / n_c` words each; word `(alpha, beta)` is word `beta` of
# concept `alpha`. Each of `K` classes is a latent sequence `z_k` of `L` concepts; a sentence of
# class `k` puts at position `l` a word of concept `z_{k,l}`, the word drawn from the law `mu`
# (uniform, or Zipf `mu_beta ~ 1/beta`). The label is the class: to classify a sentence the
# network only needs the concept of each word, so words of a concept are interchangeable.

# %%
spec = fc.PRESETS["tiny"].replace(law="zipf")
data = fc.make_data(spec)
print(f"{spec.K} classes, L = {spec.L}, {spec.n_w} words, {spec.n_train} training sentences")
print("latent z_0 (concepts):", data.Z[0])
print("a sentence of class 0 (token ids):", data.train_x[0])
print("its concepts:", data.train_x[0] // spec.s_c, " word indices:", data.train_x[0] % spec.s_c)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(fc.word_law("uniform", spec.s_c), label="uniform")
ax.plot(data.mu, label="Zipf")
ax.set(xlabel="word index beta within a concept", ylabel="mu_beta", yscale="log")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. The reduced problems and the paper's constants
#
# At a collapsed configuration the regularised risk depends on a few scalars. For type I,
# `s = ||w|| ||u||` minimises `CE(gamma s) + lam sqrt(n_w K L) s` with
# `CE(t) = log(1 + K ((1 + (n_c - 1) e^{-t}) / n_c)^L)` and `gamma = n_c / (n_c - 1)`; the
# paper's network (n_w = 1200, L = 15, lam = 1e-3) then has `||w|| = 1.42213` for K = 1000 and
# `0.616024` for K = 50. With LayerNorm `||phi(w)|| = sqrt(d)` and only `||u||` is free.

# %%
t1_1000 = fc.theory.type1_optimum(3, 1200, 1000, 15, 1e-3)
t1_50 = fc.theory.type1_optimum(3, 1200, 50, 15, 1e-3)
t2 = fc.theory.type2_optimum(3, 200, 15, 100, 1e-3)
print(f"type I,  K = 1000: ||w|| = {t1_1000.w_norm:.5f}, ||u|| = {t1_1000.u_norm:.5f}")
print(f"type I,  K = 50:   ||w|| = {t1_50.w_norm:.6f}, ||u|| = {t1_50.u_norm:.6f}")
print(f"type II, K = 200:  ||u|| = {t2.b:.6f}, ||phi(w)|| = sqrt(100) = {t2.phi_norm:g}")
s = np.linspace(0, 3 * t1_50.s, 200)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(s, fc.theory.type1_objective(s, 3, 1200, 50, 15, 1e-3))
ax.axvline(t1_50.s, color="k", ls="--", lw=1)
ax.set(xlabel="s = ||w|| ||u||", ylabel="reduced risk", title="type I, K = 50")
plt.show()

# %% [markdown]
# ## 3. Type I: uniform frequencies, no LayerNorm
#
# The `small` preset (K = 50 classes, 100 sentences each, the paper's network and SGD) trains
# three seeds; the words of each concept collapse onto a simplex and the mean `||w||` lands
# near 0.616 (measured 0.603, -2%). In fast mode the tiny network trains for a few epochs.

# %%
if FAST:
    tiny = fc.PRESETS["tiny"].replace(epochs=60)
    configs = (tiny, tiny.replace(law="zipf"), tiny.replace(law="zipf", layernorm=True))
    job = fc.run_job("tiny", configs=configs, seeds=1, checkpoints=6, out=OUT, quiet=True)
    uniform_job, gap_job = job, job
else:
    uniform_job = fc.run_job("small", out=OUT, quiet=True)
    gap_job = fc.run_job("zipf-gap", out=OUT, extend=True, quiet=True)
print(uniform_job.text)


# %%
def first_seed_items(job):
    """(spec, final embedding of the smallest stored seed) per configuration of a job."""
    items = []
    for spec, h in zip(job.configs, job.hashes):
        seed = int(job.rows.loc[job.rows.config_hash == h, "seed"].min())
        items.append((spec, fc.load_embeddings(job.folder, h, seed)))
    return items


uniform = [(s, h) for s, h in zip(uniform_job.configs, uniform_job.hashes) if s.law == "uniform"]
specs, hashes = zip(*uniform)
fig = fc.plot_embedding_pca([it for it in first_seed_items(uniform_job) if it[0] in specs])
plt.show()
fig = fc.plot_norms(uniform_job.rows, specs, hashes)
plt.show()

# %% [markdown]
# ## 4. Zipf frequencies: the generalisation gap that LayerNorm closes
#
# With Zipf frequencies and few sentences per class (`zipf-gap`: K = 200, 5 sentences each),
# the network without LayerNorm fits the training set but rare words keep small, poorly aligned
# embeddings: test accuracy stays near 0.77 (type III: the norm grows with the frequency). With
# LayerNorm every word representation has the same norm, the rare words are classified by their
# direction alone and test accuracy reaches 1.00 (type II; `||u||` within 2% of the
# prediction).

# %%
zipf = [(s, h) for s, h in zip(gap_job.configs, gap_job.hashes) if s.law == "zipf"]
specs, hashes = zip(*zipf)
fig = fc.plot_curves(gap_job.rows, specs, hashes)
plt.show()
items = [it for it in first_seed_items(gap_job) if it[0] in specs]
fig = fc.plot_norm_vs_frequency(items)
plt.show()
fig = fc.plot_embedding_pca(items)
plt.show()
print(gap_job.text)

# %% [markdown]
# ## 5. The type-III closed form
#
# With all `K = n_c^L` latent sequences the risk of the type-III configuration
# `w_(alpha,beta) = r_beta c_alpha` has an explicit stationarity system; it has a non-zero
# solution iff `lam^2 < L n_c^{-L-1} sum_beta mu_beta^2`, which fails at the paper's L = 15 but
# holds at L = 4 (the `type3` preset: 81 classes). The trained network matches the solution to
# 0.1% (full mode).

# %%
spec3 = fc.PRESETS["type3"]
data3 = fc.make_data(spec3)
sol = fc.theory.type3_solve(data3.mu, spec3.n_c, spec3.L, spec3.weight_decay)
exists_4 = fc.theory.type3_exists(data3.mu, 3, 4, 1e-3)
exists_15 = fc.theory.type3_exists(fc.word_law("zipf", 400), 3, 15, 1e-3)
print(f"a type-III solution exists at L = 4: {exists_4}; at L = 15 (400 words): {exists_15}")
print(f"predicted ||u|| = {sol.b:.5f}; r_beta = {np.round(sol.r, 4)}")
if not FAST:
    job3 = fc.run_job("type3", out=OUT, extend=True, quiet=True)
    print(job3.text)
    fig = fc.plot_norm_vs_frequency(first_seed_items(job3))
    plt.show()
