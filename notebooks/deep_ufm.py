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
# # Deep neural collapse versus low-rank solutions in the deep UFM
#
# The deep unconstrained feature model (`ufm.DeepUFMSpec`): free features `H_1`, then
# `H_{l+1} = ReLU(W_l H_l)` and the output `W_L H_L`, MSE loss and weight decay on `H_1` and every
# `W_l` (Sukenik, Mondelli, Lampert 2023, arXiv 2305.13165; Sukenik, Lampert, Mondelli 2024,
# arXiv 2405.14468). Deep neural collapse (DNC: orthogonal class means of equal norm in every
# layer) has the closed-form loss `ufm.deep.dnc_loss`. For `L >= 3` layers and enough classes,
# rank-`r`
# solutions built on the edges of the complete graph `K_r` (`K = r(r-1)/2`,
# `ufm.deep.srg_construction`)
# cost less, and gradient descent finds low-rank solutions too.
#
# This notebook: (1) the two constructions and their losses, (2) Fig. 2 of the 2024 paper (K = 10,
# L = 4), (3) Fig. 3, (4) the binary case where DNC is optimal, (5) small K (Fig. 5), (6) Hessian
# classification of critical points. `UFM_FAST=1` runs a short version (CI: about 30 s on 2 CPU
# cores); the full mode takes about half an hour on 2 CPU cores, almost all of it Fig. 3 (the same
# runs in `experiments/deep_ufm.py`, which stores the results, measured 1577 s in all at load ~6).
#
# Observed at K = 3, 4, 5 with `experiments/deep_ufm.py --only fig5` (10 seeds, 10^5 GD steps,
# n = 5): at L = 4, width 30 every seed converges to DNC (loss within 1e-6 of L_DNC, full-rank
# class means) for lambda = 0.004, 0.008 and 0.015. Low-rank ends below L_DNC appear with more
# depth or less width: L = 5 (K = 4: 1/10, K = 5: 3/10 seeds), L = 6 with lambda = 0.002 (1/10,
# 7/10), width 10 at L = 4 (K = 5: 6/10); never at K = 3, where our SRG construction does not beat
# DNC either (L_SRG > L_DNC; it does from K = 6).

# %%
import os

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib.pyplot as plt
import numpy as np

import ufm

FAST = os.environ.get("UFM_FAST", "0") == "1"
SEEDS, STEPS = (3, 6_000) if FAST else (10, 200_000)
LAM, N_PER_CLASS, WIDTH, LR, TAU = 4e-3, 5, 30, 0.5, 1e-3

# %% [markdown]
# ## 1. DNC and the SRG construction
#
# Both constructions have a fixed shape and free per-layer scales; balancing the scales (AM-GM)
# leaves `min_t (1-t)^2/2 + c t^{2/(L+1)}`, with `c_DNC = ((L+1)K/2)(n lambda^{L+1})^{1/(L+1)}`.
# The SRG construction has class means of rank `r` in layers `1..L-1`; its last pre-activation is
# `B^T B - J` (`B` the vertex-edge incidence of `K_r`), which the ReLU maps to the identity.

# %%
B = ufm.deep.edge_incidence(5)
M = B.T @ B - 1.0
fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
ax[0].imshow(B, cmap="Greys")
ax[0].set(title="incidence B (r = 5, K = 10)", xlabel="class = edge", ylabel="vertex")
ax[1].imshow(M, cmap="RdBu_r", vmin=-1, vmax=1)
ax[1].set(title=f"$B^T B - J$: rank {np.linalg.matrix_rank(M)}, ReLU -> I")
rs = np.arange(3, 16)
for L in (2, 3, 4, 5):
    ax[2].plot(rs, [ufm.deep.srg_ratio(int(r), L) for r in rs], "o-", ms=3, label=f"L = {L}")
ax[2].axhline(1, color="k", lw=0.8)
ax[2].set(xlabel="r", ylabel="$c_{SRG} / c_{DNC}$", title="SRG beats DNC below 1")
ax[2].legend()
plt.show()

spec = ufm.DeepUFMSpec(K=10, n=N_PER_CLASS, L=4, widths=WIDTH, lambda_H1=LAM, lambda_W=LAM)
L_DNC, L_SRG = float(ufm.deep.dnc_loss(spec)), float(ufm.deep.srg_loss(spec))
srg = ufm.deep.srg_construction(spec)
print(
    f"L_DNC = {L_DNC:.6f}   L_SRG = {L_SRG:.6f} (upper bound)   "
    f"ranks of the SRG class means: {srg.ranks}"
)
print(
    "loss at the DNC point:",
    float(ufm.loss(spec, ufm.deep.dnc_point(spec))),
    " grad norm:",
    float(ufm.grad_norm(spec, ufm.deep.dnc_point(spec))),
)

# %% [markdown]
# ## 2. Gradient descent at K = 10, L = 4 (Fig. 2 of arXiv 2405.14468)
#
# Full-batch GD with learning rate 0.5 from `O(1)` random starts (the origin is a strict local
# minimum for `L >= 2`). We record the loss and the per-layer DNC1 along the way, and the singular
# values of the class-mean matrices at the end.


# %%
def record(spec, params):
    m = ufm.deep.deep_metrics(spec, params, tau=TAU)
    return {k: v for k, v in m.items() if k.startswith("dnc1_pinv_H")}


p0 = ufm.init_batch(spec, jax.random.key(0), SEEDS)
res = ufm.optimize(
    spec,
    p0,
    optimizer=ufm.gd(LR),
    max_steps=STEPS,
    tol=1e-10,
    chunk=min(STEPS, 10_000),
    record_every=min(STEPS, 1000) // 2,
    record=record,
)
final = jax.vmap(lambda p: ufm.deep.deep_metrics(spec, p, tau=TAU))(res.params)
loss = np.asarray(res.loss)
print(f"{res.wall_time:.1f} s; final losses {np.round(loss, 4)}")
print(f"below L_DNC: {np.sum(loss < L_DNC)}/{SEEDS}, below L_SRG: {np.sum(loss < L_SRG)}/{SEEDS}")
for l in range(1, 5):
    print(f"rank of the class means of H_{l} (tau = {TAU}):", np.asarray(final[f"rank_H{l}"]))

# %%
fig, ax = plt.subplots(1, 3, figsize=(15, 4))
t, tr = res.trace_steps, res.trace["loss"]
ax[0].plot(t, tr, color="0.6", lw=0.7)
ax[0].plot(t, tr.mean(1), color="C0", label="mean")
ax[0].fill_between(t, tr.mean(1) - tr.std(1), tr.mean(1) + tr.std(1), alpha=0.25)
ax[0].axhline(L_DNC, color="C3", ls="--", label="$L_{DNC}$")
ax[0].axhline(L_SRG, color="C2", ls=":", label="$L_{SRG}$")
ax[0].set(ylim=(0.9 * min(L_SRG, tr[-1].min()), 1.3 * L_DNC), xlabel="iteration", ylabel="loss")
ax[0].legend()
for l in range(1, 5):
    ax[1].semilogy(t, np.median(res.trace[f"dnc1_pinv_H{l}"], 1), label=f"$H_{l}$")
ax[1].set(xlabel="iteration", ylabel="DNC1 (median over seeds)")
ax[1].legend()
cm = jax.vmap(lambda p: ufm.deep.deep_class_means(spec, p))(res.params)
for l, Mh in enumerate(cm.H):
    s = np.linalg.svd(np.asarray(Mh), compute_uv=False)
    ax[2].semilogy(np.arange(1, 11) + 0.1 * l, (s / s[:, :1]).T, "o-", ms=3, lw=0.5, color=f"C{l}")
ax[2].axhline(TAU, color="k", ls=":")
ax[2].set(
    xlabel="i",
    ylabel="$\\sigma_i/\\sigma_1$",
    title="class-mean spectra (colour = layer)",
    ylim=(1e-8, 2),
)
plt.show()

# %% [markdown]
# ## 3. Fig. 3 of arXiv 2405.14468: low rank beats DNC as K grows; rank vs weight decay and width
#
# Left: `L_SRG / L_DNC` against `r` (`K = C(r, 2)`, widths `r`) for `L = 3, 4, 5`, from the closed
# forms. Middle: the average numerical rank of the class means at the end of GD against the weight
# decay (`K = 10`, `L = 4`). Right: the fraction of seeds that reach DNC (loss within 1e-3 of
# `L_DNC`, every class-mean matrix of rank `K`) and that end below `L_DNC`, against the width.
# Full mode: 10 seeds x 10^5 GD steps per point (about 25 minutes on 2 CPU cores; the same runs
# with stored results: `python experiments/deep_ufm.py --only fig3_rank fig3_width`).

# %%
F3_SEEDS, F3_STEPS = (2, 1_500) if FAST else (10, 100_000)
F3_LAMS = (2e-3, 6e-3) if FAST else (1e-3, 2e-3, 3e-3, 4e-3, 5e-3, 6e-3)
F3_WIDTHS = (10, 30) if FAST else (10, 15, 20, 30, 50, 100)


def gd_end(spec_x, key):
    r = ufm.optimize(
        spec_x,
        ufm.init_batch(spec_x, jax.random.key(key), F3_SEEDS),
        optimizer=ufm.gd(LR),
        max_steps=F3_STEPS,
        tol=1e-10,
        chunk=min(F3_STEPS, 10_000),
    )
    m = jax.vmap(lambda p: ufm.deep.deep_metrics(spec_x, p, tau=TAU))(r.params)
    ranks = np.stack([np.asarray(m[f"rank_H{l}"]) for l in range(1, spec_x.L + 1)], axis=1)
    return np.asarray(r.loss), ranks


fig, ax = plt.subplots(1, 3, figsize=(15, 4))
rs = np.arange(3, 11)
for L in (3, 4, 5):
    ratio = []
    for r in rs:
        K = int(r * (r - 1) // 2)
        s_r = ufm.DeepUFMSpec(
            K=K,
            n=N_PER_CLASS,
            L=L,
            widths=tuple([int(r)] * (L - 1) + [K]),
            lambda_H1=1e-3,
            lambda_W=1e-3,
        )
        ratio.append(float(ufm.deep.srg_loss(s_r)) / float(ufm.deep.dnc_loss(s_r)))
    ax[0].plot(rs, ratio, "o-", label=f"L = {L}")
ax[0].axhline(1, color="k", lw=0.8)
ax[0].set(xlabel="r  (K = r(r-1)/2)", ylabel="$L_{SRG}/L_{DNC}$", title="n = 5, $\\lambda$ = 1e-3")
ax[0].legend()
mean_rank = []
for i, lam in enumerate(F3_LAMS):
    _, ranks = gd_end(spec.replace(lambda_H1=lam, lambda_W=lam), 100 + i)
    mean_rank.append(ranks[:, :-1].mean())
ax[1].plot(F3_LAMS, mean_rank, "o-")
ax[1].set(
    xlabel="weight decay $\\lambda$",
    ylabel=f"mean rank of $H_1..H_3$ (tau = {TAU})",
    title=f"K = 10, L = 4, {F3_SEEDS} seeds, {F3_STEPS} steps",
)
p_dnc, p_below = [], []
for i, w in enumerate(F3_WIDTHS):
    s_w = ufm.DeepUFMSpec(K=10, n=N_PER_CLASS, L=4, widths=w, lambda_H1=LAM, lambda_W=LAM)
    loss_w, ranks = gd_end(s_w, 200 + i)
    l_dnc = float(ufm.deep.dnc_loss(s_w))
    p_dnc.append(np.mean((np.abs(loss_w - l_dnc) <= 1e-3 * l_dnc) & (ranks == 10).all(axis=1)))
    p_below.append(np.mean(loss_w < l_dnc * (1 - 1e-6)))
ax[2].plot(F3_WIDTHS, p_dnc, "o-", label="reached DNC")
ax[2].plot(F3_WIDTHS, p_below, "s--", label="below $L_{DNC}$")
ax[2].set(xscale="log", xlabel="width", ylabel="fraction of seeds", ylim=(-0.05, 1.05))
ax[2].legend()
plt.show()
print("mean hidden-layer rank per lambda:", np.round(mean_rank, 2))
print("P(DNC), P(below L_DNC) per width:", np.round(p_dnc, 2), np.round(p_below, 2))

# %% [markdown]
# ## 4. The binary case: DNC is optimal (Sukenik et al. 2023)
#
# With `K = 2` gradient descent reaches `L_DNC` and nothing goes below it.

# %%
spec2 = spec.replace(K=2)
res2 = ufm.optimize(
    spec2,
    ufm.init_batch(spec2, jax.random.key(1), SEEDS),
    optimizer=ufm.gd(LR),
    max_steps=STEPS // 2,
    tol=1e-10,
    chunk=min(STEPS // 2, 10_000),
)
gap = np.asarray(res2.loss) - float(ufm.deep.dnc_loss(spec2))
print("loss - L_DNC per seed:", gap)
assert (gap > -1e-9).all()

# %% [markdown]
# ## 5. Few classes (Fig. 5 of arXiv 2405.14468): fit and regularisation, class-mean Grams
#
# The balance between the fit term and the regularisation along the run, and the Gram matrices
# `M_l^T M_l` of the class means of each layer for the best seed.

# %%
Ks = (3,) if FAST else (3, 4, 5)
fig, ax = plt.subplots(len(Ks), 5, figsize=(16, 3.2 * len(Ks)), squeeze=False)
for i, K in enumerate(Ks):
    sK = spec.replace(K=K)
    rK = ufm.optimize(
        sK,
        ufm.init_batch(sK, jax.random.key(2), SEEDS),
        optimizer=ufm.gd(LR),
        max_steps=STEPS // 2,
        tol=1e-10,
        chunk=min(STEPS // 2, 10_000),
        record=ufm.deep.deep_loss_terms,
    )
    best = int(np.argmin(rK.loss))
    ax[i, 0].semilogy(rK.trace_steps, rK.trace["fit"][:, best], label="fit")
    ax[i, 0].semilogy(rK.trace_steps, rK.trace["reg"][:, best], label="regularisation")
    ax[i, 0].axhline(float(ufm.deep.dnc_loss(sK)), color="C3", ls="--", lw=0.8, label="$L_{DNC}$")
    ax[i, 0].set(title=f"K = {K}", xlabel="iteration")
    ax[i, 0].legend(fontsize=7)
    cmK = ufm.deep.deep_class_means(sK, jax.tree_util.tree_map(lambda x: x[best], rK.params))
    for l, Mh in enumerate(cmK.H):
        G = np.asarray(Mh).T @ np.asarray(Mh)
        ax[i, 1 + l].imshow(G / np.abs(G).max(), cmap="RdBu_r", vmin=-1, vmax=1)
        ax[i, 1 + l].set(
            title=f"layer {l + 1}: rank {int(ufm.metrics.numerical_rank(Mh, TAU))}",
            xticks=[],
            yticks=[],
        )
    print(f"K = {K}: final loss - L_DNC = {np.asarray(rK.loss) - float(ufm.deep.dnc_loss(sK))}")
plt.show()

# %% [markdown]
# ## 6. Classifying critical points: tanh and identity networks
#
# `ufm.classify_batch` takes a `DeepUFMSpec` and returns the same columns as for the UFM. There is
# no closed-form optimum, so `f_star` is the reference `L_DNC` (low-rank points can go below it)
# and points without negative curvature are `local_min` (zero modes as predicted by the symmetries,
# `ufm.deep.deep_zero_mode_count`) or `degenerate` (extra zero modes). Below: a tanh network (`L =
# 3`,
# `K = 3`) trained with heavy-ball momentum and polished by Newton from four starts, two of them
# with
# `W_1`, `H_1` in a rank-1 / rank-2 subspace (an invariant subspace: the minima there are saddles of
# the full problem), plus the origin, a strict local minimum for `L >= 2`.

# %%
spec_t = ufm.DeepUFMSpec(K=3, n=2, L=3, widths=4, activation="tanh", lambda_H1=5e-3, lambda_W=5e-3)
p0 = ufm.init_batch(spec_t, jax.random.key(0), 4)
mask = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], float)
p0 = p0._replace(H1=p0.H1 * mask[:, :, None], Ws=(p0.Ws[0] * mask[:, None, :],) + p0.Ws[1:])
res_t = ufm.optimize(spec_t, p0, optimizer=ufm.momentum(0.1, 0.9), max_steps=10_000, tol=1e-7)
pts = ufm.polish(spec_t, res_t.params)
with_origin = jax.tree_util.tree_map(
    lambda x: np.concatenate([x, np.zeros_like(x[:1])]), pts.params
)
rows = ufm.classify_batch(spec_t, with_origin)
print(
    f"{'start':>12} {'class':>14} {'loss':>8} {'f - L_DNC':>10} {'lambda_min':>11} {'n_neg':>5} "
    f"{'n_zero':>6} {'predicted':>9} {'rank':>4}"
)
for i, start in enumerate(["full", "full", "rank 1", "rank 2", "origin"]):
    print(
        f"{start:>12} {rows['class'][i]:>14} {rows['loss'][i]:8.5f} {rows['f_gap'][i]:10.5f} "
        f"{rows['lambda_min'][i]:11.2e} {rows['n_neg'][i]:5d} {rows['n_zero'][i]:6d} "
        f"{rows['zero_modes_predicted'][i]:9d} {rows['rank'][i]:4d}"
    )

# %% [markdown]
# With the identity activation the DNC point is a critical point whose zero modes come from the
# rotations `O(d_l)` of every layer, `L (d(d-1)/2 - (d-K)(d-K-1)/2) = 18` here (`ufm.classify`
# finds them as well). With ReLU its off-class pre-activations are exactly 0, a kink where the
# Hessian is not defined, and `classify` says so.

# %%
spec_i = spec_t.replace(activation="identity")
print(
    "identity DNC: predicted zero modes",
    int(ufm.deep.deep_zero_mode_count(spec_i, ufm.deep.dnc_point(spec_i))),
)
try:
    ufm.classify(
        spec_t.replace(activation="relu"), ufm.deep.dnc_point(spec_t.replace(activation="relu"))
    )
except ValueError as err:
    print("ReLU DNC:", str(err)[:160], "...")
